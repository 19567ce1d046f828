"""Pushes to the app's backend (SPEC §3.5): each change POSTed to WHOOPSYNC_APP_WEBHOOK_URL,
signed per Standard Webhooks, at least once, in order per user.

A user's pushes form a queue ordered by change number; one sender at a time (a lock per user,
across processes, with a short renewed lease) sends its head, and a later push waits until the one
before it was answered 2xx or its day of retries (from its first attempt) ran out. The senders of a
process are a fixed number of slots of their own (`common.feed.pusher`), apart from the job slots
that process WHOOP events. Every attempt is recorded. The `webhook-id` is the same on every attempt of
a change, so a receiver can drop a push it already has.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import httpx
import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from common import tracing
from common.config import Settings
from common.db.models import Change
from common.db.repositories.deliveries import DELIVERED, FAILED, DeliveryRepository, Pending
from common.db.types import utcnow
from common.feed.cursor import encode
from common.feed.lifecycle import event_name
from common.locks import Locks, LockTimeout
from common.metrics import APP_DELIVERIES, APP_DELIVERY_LAG

if TYPE_CHECKING:
    from common.queue import Queue

log = structlog.get_logger(__name__)

DELIVER_APP = "deliver_app"
RETRY_FOR = timedelta(days=1)
POST_TIMEOUT = 10.0
# A sender holds a user's queue this long at most, then puts the user behind those waiting.
JOB_BUDGET = 30.0
# The lease of a user's queue lock, renewed every third of it while held: a killed sender holds
# that user's pushes back this long at most.
LEASE = 15.0
# Pushes of one user read at a time (one look-up for a run of changes).
HEADS = 20


class PushContext(Protocol):
    """What sending pushes needs of a process (its `SyncContext` has it all)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def lookups(self) -> async_sessionmaker[AsyncSession]: ...
    @property
    def locks(self) -> Locks: ...
    @property
    def http(self) -> httpx.AsyncClient: ...


class Waker(Protocol):
    """Whom a sender hands a user back to, now or after a delay (`common.feed.pusher.Pusher`)."""

    def wake(self, user_ids: Iterable[uuid.UUID], delay: float = 0.0) -> None: ...


def payload(change: Change) -> bytes:
    """The body of a change's push."""
    return orjson.dumps(
        {
            "type": event_name(change),
            "user_id": str(change.user_id),
            "whoop_user_id": change.whoop_user_id,
            "cursor": encode(change.seq),
            "id": change.record_id,
            "updated_at": change.updated_at or change.changed_at,
            "record": None if change.data is None else orjson.Fragment(change.data),
        }
    )


def signed_headers(secret: str, message_id: str, body: bytes, now: datetime) -> dict[str, str]:
    """Standard Webhooks headers for one attempt."""
    signature = Webhook(secret).sign(message_id, now, body.decode())
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt: exponential from 1 s, at most 5 minutes, jittered."""
    return min(300.0, 2.0 ** max(0, attempts - 1)) * random.uniform(0.8, 1.0)


@dataclass(frozen=True)
class Answer:
    """What one POST came back with."""

    ok: bool
    code: int | None
    error: str | None
    duration_ms: int


async def post(http: httpx.AsyncClient, url: str, secret: str, change: Change) -> Answer:
    """POST one change; any answer but 2xx, and any transport failure, is a failure."""
    body = payload(change)
    headers = signed_headers(secret, f"msg_{encode(change.seq)}", body, utcnow())
    clock = time.monotonic()
    try:
        with tracing.span(f"push {change.data_type}.{change.action}", client=True):
            response = await http.post(url, content=body, headers=headers, timeout=POST_TIMEOUT)
    except httpx.HTTPError as exc:
        ms = int((time.monotonic() - clock) * 1000)
        return Answer(False, None, type(exc).__name__, ms)
    ms = int((time.monotonic() - clock) * 1000)
    ok = 200 <= response.status_code < 300
    return Answer(ok, response.status_code, None if ok else f"HTTP {response.status_code}", ms)


async def deliver_user(sync: PushContext, pusher: Waker, user_id: uuid.UUID) -> int:
    """Send the user's due pushes in order, holding the user's queue; how many were acknowledged.

    The queue is held by a named lock (Redis across processes, renewed while held; in-process in
    the embedded mode), never by a database connection: no connection is checked out while a POST
    is in flight, so a slow receiver cannot take the connections WHOOP events need.
    """
    settings = sync.settings
    if not settings.app_webhook_url or settings.app_webhook_secret is None:
        return 0
    sent = 0
    while True:
        try:
            async with sync.locks.lock(
                f"app-push:{user_id}", timeout=LEASE, blocking_timeout=0, keep_alive=True
            ):
                done, finished = await _drain_user(sync, pusher, user_id)
        except LockTimeout:  # another sender holds this user's queue; it looks again after
            return sent
        sent += done
        # A sender that found the queue held gave up while this one held it: look once more.
        if not finished or not await _due(sync, user_id):
            return sent


async def _due(sync: PushContext, user_id: uuid.UUID) -> bool:
    async with sync.lookups() as session:
        due = await DeliveryRepository(session).next_due_at(user_id)
    return due is not None and due <= utcnow()


async def _drain_user(sync: PushContext, pusher: Waker, user_id: uuid.UUID) -> tuple[int, bool]:
    """Send due pushes head first: (acknowledged, whether the queue was left idle or waiting).

    The queue is read `HEADS` pushes at a time; a push that arrives meanwhile is not missed: its
    waker finds this user being sent and asks for one more look (`deliver_user` looks again after
    releasing the queue)."""
    settings = sync.settings
    assert settings.app_webhook_url is not None
    assert settings.app_webhook_secret is not None
    secret = settings.app_webhook_secret.get_secret_value()
    started, sent = time.monotonic(), 0
    while True:
        async with sync.lookups() as session:  # returned before the POST
            heads = await DeliveryRepository(session).pending(user_id, HEADS)
        for push in heads:
            if time.monotonic() - started >= JOB_BUDGET:
                pusher.wake([user_id])  # its share is spent: behind the users already waiting
                return sent, False
            wait = (push.next_attempt_at - utcnow()).total_seconds()
            if wait > 0:  # a retry not due yet: this process comes back for it then
                pusher.wake([user_id], wait)
                return sent, True
            answer = await post(sync.http, settings.app_webhook_url, secret, push.change)
            delay = await _note(sync, push, answer)
            if answer.ok:
                sent += 1
            elif delay is not None:
                pusher.wake([user_id], delay)
                return sent, True
        if len(heads) < HEADS:
            return sent, True


async def _note(sync: PushContext, push: Pending, answer: Answer) -> float | None:
    """Record the attempt and its consequence; the delay before a retry, or None.

    Each attempt is its own unit of work by design: its POST was sent with no transaction open
    (a slow receiver holds no connection), and what it came to is written at once, whatever
    becomes of the next one; the sender that calls this is a task of its own, not a job.
    """
    now, seq = utcnow(), push.seq
    delay: float | None = None
    if answer.ok:
        then: dict[str, object] = {"status": DELIVERED, "delivered_at": now}
    else:
        async with sync.lookups() as session:
            first = await DeliveryRepository(session).first_attempt(seq, push.created_at)
        if now - (first or now) >= RETRY_FOR:
            # The day runs from the first attempt: pushes queued behind a failing head for
            # hours still get their own day of retries once their turn comes.
            then = {"status": FAILED}
        else:
            delay = retry_delay(push.attempts + 1)
            then = {"next_attempt_at": now + timedelta(seconds=delay)}
    async with sync.lookups.begin() as session:  # one statement on PostgreSQL
        await DeliveryRepository(session).record_attempt(
            seq,
            ok=answer.ok,
            response_code=answer.code,
            duration_ms=answer.duration_ms,
            error=answer.error,
            **then,
        )
    if answer.ok:
        APP_DELIVERIES.labels("delivered").inc()
        APP_DELIVERY_LAG.observe(max(0.0, (now - push.change.changed_at).total_seconds()))
    else:
        APP_DELIVERIES.labels("retried" if delay is not None else "failed").inc()
        log.info(
            "app_push.failed",
            change=seq,
            code=answer.code,
            error=answer.error,
            retry_in=None if delay is None else round(delay, 1),
        )
    return delay


async def enqueue_users(queue: Queue, user_ids: Iterable[uuid.UUID]) -> None:
    """Start a push job for each of these users (a process that has no pusher of its own)."""
    for user_id in user_ids:
        try:
            await queue.enqueue(DELIVER_APP, str(user_id))
        except Exception as exc:  # the queue away: the due cron finds the user again
            log.warning("app_push.enqueue_failed", error=type(exc).__name__)
