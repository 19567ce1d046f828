"""WHOOP's webhook sender: v2 payloads signed with the client secret, retried 5 times on failure.

Signature, as WHOOP documents it: `X-WHOOP-Signature` = base64(HMAC-SHA256(client_secret,
timestamp + raw body)), `X-WHOOP-Signature-Timestamp` = epoch milliseconds (real time) as a string.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import structlog

from services.simulator.clock import Clock

EVENT_TYPES = frozenset(
    f"{kind}.{verb}" for kind in ("sleep", "recovery", "workout") for verb in ("updated", "deleted")
)
log = structlog.get_logger()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, timestamp + body))."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass
class Delivery:
    """One event and what became of it."""

    user_id: int
    id: str
    type: str
    trace_id: str
    status: str = "pending"  # pending | delivered | failed | no_url
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None

    def payload(self) -> bytes:
        """The raw JSON body WHOOP sends."""
        body = {
            "user_id": self.user_id,
            "id": self.id,
            "type": self.type,
            "trace_id": self.trace_id,
        }
        return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class WebhookSender:
    """Delivers events in the background; `wait_idle()` lets tests wait for the outcome."""

    secret: str
    url: str | None
    clock: Clock
    retry_delays: tuple[float, ...]
    timeout: float = 10.0
    concurrency: int = 16
    # WHOOP-side loss: this share of events is never sent (status "dropped").
    loss: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    log: deque[Delivery] = field(default_factory=lambda: deque(maxlen=10_000))
    # The receiver's answer to every delivery attempt, by status ("error": no answer).
    answers: Counter[str] = field(default_factory=Counter)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _gate: asyncio.Semaphore | None = None
    _http: httpx.AsyncClient | None = None

    def send(self, user_id: int, record_id: str, event_type: str) -> Delivery:
        """Queue one event for delivery."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown webhook type {event_type!r}")
        delivery = Delivery(user_id, str(record_id), event_type, str(uuid.uuid4()))
        self.log.append(delivery)
        if self.loss > 0 and self.rng.random() < self.loss:
            delivery.status = "dropped"
            return delivery
        if self.url is None:
            delivery.status = "no_url"
            return delivery
        task = asyncio.create_task(self._deliver(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return delivery

    @property
    def pending(self) -> int:
        """Deliveries still trying."""
        return len(self._tasks)

    async def wait_idle(self) -> None:
        """Return once every queued delivery has succeeded or given up (wrap in a timeout)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel deliveries still waiting."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def as_json(self, limit: int = 1000) -> dict[str, Any]:
        """The control API's view: the newest deliveries first."""
        newest = list(self.log)[-limit:][::-1]
        return {"pending": self.pending, "deliveries": [asdict(d) for d in newest]}

    async def _deliver(self, delivery: Delivery) -> None:
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.concurrency)
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout)
        for attempt, delay in enumerate((0.0, *self.retry_delays)):
            if delay:
                await asyncio.sleep(self.clock.real_seconds(delay))
            delivery.attempts = attempt + 1
            async with self._gate:
                if await self._attempt(delivery):
                    delivery.status = "delivered"
                    return
        delivery.status = "failed"
        log.warning("webhook.failed", type=delivery.type, attempts=delivery.attempts)

    async def _attempt(self, delivery: Delivery) -> bool:
        assert self.url is not None
        assert self._http is not None
        body = delivery.payload()
        timestamp = str(int(time.time() * 1000))
        headers = {
            "Content-Type": "application/json",
            "X-WHOOP-Signature": signature(self.secret, timestamp, body),
            "X-WHOOP-Signature-Timestamp": timestamp,
        }
        try:
            response = await self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            delivery.last_status, delivery.last_error = None, type(exc).__name__
            self.answers["error"] += 1
            return False
        delivery.last_status, delivery.last_error = response.status_code, None
        self.answers[str(response.status_code)] += 1
        return 200 <= response.status_code < 300
