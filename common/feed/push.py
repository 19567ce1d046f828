"""Pushes to the app's backend (SPEC §3.5): each change POSTed to WHOOPSYNC_APP_WEBHOOK_URL,
signed per Standard Webhooks, at least once, in order per user.

A user's pushes form a queue ordered by change number; one job at a time (a lock per user, across
processes, that dies with its holder's database connection) sends its head, and a later push waits until the one before it was answered 2xx or its
day of retries ran out. Every attempt is recorded. The `webhook-id` is the same on every attempt of
a change, so a receiver can drop a push it already has.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook

from common import tracing
from common.db.models import AppDelivery, Change
from common.db.repositories.deliveries import DeliveryRepository
from common.db.types import utcnow
from common.feed.cursor import encode
from common.locks import LockTimeout
from common.metrics import APP_DELIVERIES, APP_DELIVERY_LAG

if TYPE_CHECKING:
    from common.queue import Queue
    from common.sync.context import SyncContext

log = structlog.get_logger(__name__)

DELIVER_APP = "deliver_app"
RETRY_FOR = timedelta(days=1)
POST_TIMEOUT = 10.0
# A job holds a user's queue this long at most, then hands on to a fresh job (the lock's lease
# stays well above it, so two jobs never send one user's pushes at once).
JOB_BUDGET = 30.0
LEASE = JOB_BUDGET + 2 * POST_TIMEOUT + 10
# The class half of the two-part advisory lock key of a user's push queue ("push" in ASCII).
PUSH_LOCK = {"c": 0x70757368}


def payload(change: Change) -> bytes:
    """The body of a change's push."""
    return orjson.dumps(
        {
            "type": f"{change.data_type}.{change.action}",
            "user_id": str(change.user_id),
            "whoop_user_id": change.whoop_user_id,
            "cursor": encode(change.seq),
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


async def deliver_user(sync: SyncContext, queue: Queue | None, user_id: uuid.UUID) -> int:
    """Send the user's due pushes in order; how many were acknowledged."""
    settings = sync.settings
    if not settings.app_webhook_url or settings.app_webhook_secret is None:
        return 0
    sent = 0
    while True:
        async with _user_queue(sync, user_id) as factory:
            if factory is None:  # another job sends this user's pushes; it looks again after
                return sent
            done, finished = await _drain_user(sync, factory, queue, user_id)
            sent += done
        # A job that found the queue held gave up while this one held it: look once more.
        if not finished or not await _due(sync, user_id):
            return sent


@contextlib.asynccontextmanager
async def _user_queue(
    sync: SyncContext, user_id: uuid.UUID
) -> AsyncIterator[async_sessionmaker[AsyncSession] | None]:
    """Hold the user's push queue: sessions over the connection that holds it, or None if taken.

    On PostgreSQL the hold is a session advisory lock on one connection, which the server drops
    the moment a killed worker's connection closes: no lease to wait out after a crash. Elsewhere
    (one process) it is a named lock of the process.
    """
    if not sync.settings.is_postgres:
        try:
            async with sync.locks.lock(f"app-push:{user_id}", timeout=LEASE, blocking_timeout=0):
                yield sync.session_factory
        except LockTimeout:
            yield None
        return
    key = int.from_bytes(user_id.bytes[:4], "big", signed=True)
    async with sync.engine.connect() as conn:
        held = await conn.scalar(
            text("SELECT pg_try_advisory_lock(:c, :k)"), PUSH_LOCK | {"k": key}
        )
        await conn.commit()
        if not held:
            yield None
            return
        try:
            yield async_sessionmaker(bind=conn, expire_on_commit=False)
        finally:
            try:
                await conn.rollback()
                await conn.execute(
                    text("SELECT pg_advisory_unlock(:c, :k)"), PUSH_LOCK | {"k": key}
                )
                await conn.commit()
            except Exception:  # the connection is broken: closing it drops the lock
                await conn.invalidate()


async def _due(sync: SyncContext, user_id: uuid.UUID) -> bool:
    async with sync.session_factory() as session:
        head = await DeliveryRepository(session).head_of(user_id)
    return head is not None and head[0].next_attempt_at <= utcnow()


async def _drain_user(
    sync: SyncContext,
    factory: async_sessionmaker[AsyncSession],
    queue: Queue | None,
    user_id: uuid.UUID,
) -> tuple[int, bool]:
    """Send due pushes head first: (acknowledged, whether the queue was left idle or waiting)."""
    settings = sync.settings
    assert settings.app_webhook_url is not None
    assert settings.app_webhook_secret is not None
    secret = settings.app_webhook_secret.get_secret_value()
    started, sent = time.monotonic(), 0
    while time.monotonic() - started < JOB_BUDGET:
        async with factory() as session:
            head = await DeliveryRepository(session).head_of(user_id)
            await session.commit()
        if head is None:
            return sent, True
        delivery, change = head
        if delivery.next_attempt_at > utcnow():
            return sent, True  # its deferred job, or the due cron, comes back for it
        answer = await post(sync.http, settings.app_webhook_url, secret, change)
        delay = await _note(factory, delivery, change, answer)
        if answer.ok:
            sent += 1
        elif delay is not None:
            if queue is not None:
                await _enqueue(queue, user_id, delay)
            return sent, True
    if queue is not None:  # the budget is spent: a fresh job carries on
        await _enqueue(queue, user_id, None)
    return sent, False


async def _note(
    factory: async_sessionmaker[AsyncSession],
    delivery: AppDelivery,
    change: Change,
    answer: Answer,
) -> float | None:
    """Record the attempt and its consequence; the delay before a retry, or None."""
    now, seq = utcnow(), delivery.change_seq
    async with factory() as session:
        repo = DeliveryRepository(session)
        await repo.record_attempt(
            seq,
            ok=answer.ok,
            response_code=answer.code,
            duration_ms=answer.duration_ms,
            error=answer.error,
        )
        delay: float | None = None
        if answer.ok:
            await repo.delivered(seq)
        elif now - delivery.created_at >= RETRY_FOR:
            await repo.give_up(seq)
        else:
            delay = retry_delay(delivery.attempts + 1)
            await repo.retry_at(seq, now + timedelta(seconds=delay))
        await session.commit()
    if answer.ok:
        APP_DELIVERIES.labels("delivered").inc()
        APP_DELIVERY_LAG.observe(max(0.0, (now - change.changed_at).total_seconds()))
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


async def _enqueue(queue: Queue, user_id: uuid.UUID, delay: float | None) -> None:
    try:
        await queue.enqueue(DELIVER_APP, str(user_id), _defer_by=delay)
    except Exception as exc:  # the queue away: the due cron finds the user again
        log.warning("app_push.enqueue_failed", error=type(exc).__name__)


async def enqueue_users(queue: Queue, user_ids: Any) -> None:
    """Start a push job for each of these users."""
    for user_id in user_ids:
        await _enqueue(queue, user_id, None)
