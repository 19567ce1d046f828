"""Pushes under trouble: a slow receiver (a real HTTP server answering late) and a dead one take
only the push senders' own slots, never a job slot or a pooled connection; the waiting users are
bounded and never doubled; a push's day of retries runs from its first attempt."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import select, update

from common.db.models import AppDelivery, AppDeliveryAttempt
from common.db.repositories import RecordRepository
from common.db.types import utcnow
from common.feed.cursor import decode
from common.feed.jobs import push_due
from common.feed.pusher import Pusher, pusher_for
from common.queue import InProcessQueue
from common.sync.context import SyncContext, build_context
from common.sync.jobs import JOBS
from common.types import DataType
from tests.common.db import samples
from tests.common.feed.receiver import Push, Receiver, serve_receiver
from tests.common.sync.harness import make_settings

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as running:
        yield running


async def _context(backend: str, pg_url: str, sqlite_url: str, url: str) -> SyncContext:
    settings = make_settings(
        pg_url if backend == "postgresql" else sqlite_url,
        None,
        "http://127.0.0.1:9",
        app_webhook_url=url,
        app_webhook_secret=SECRET,
    )
    return await build_context(settings)


@pytest.fixture
async def running(
    backend: str, pg_url: str, sqlite_url: str, receiver: Receiver
) -> AsyncIterator[tuple[SyncContext, InProcessQueue]]:
    """A process context pushing to `receiver`, with the in-process queue of `serve`."""
    sync = await _context(backend, pg_url, sqlite_url, receiver.url)
    queue = InProcessQueue(JOBS, {"sync": sync})
    sync.feed.use_queue(queue)
    queue.start()
    try:
        yield sync, queue
    finally:
        await queue.close()
        await sync.close()


async def write(sync: SyncContext, user: uuid.UUID, hour: int, whoop_user: int = 77) -> None:
    """One committed change of `user`."""
    obj = samples.workout(start=T0 + timedelta(hours=hour), whoop_user_id=whoop_user)
    async with sync.session_factory() as session:
        await RecordRepository(session, DataType.WORKOUT).upsert(user, [obj])
        await session.commit()


async def until(check: Callable[[], bool], limit: float = 30.0) -> None:
    """Poll `check` every 20 ms until it holds (TimeoutError after `limit` seconds)."""
    async with asyncio.timeout(limit):
        while not check():  # noqa: ASYNC110 - the conditions are plain state, not events
            await asyncio.sleep(0.02)


def _checked_out(sync: SyncContext) -> int:
    checked_out: int = sync.engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
    return checked_out


def _user(push: Push) -> str:
    user: str = orjson.loads(push.body)["user_id"]
    return user


async def test_a_slow_receiver_holds_no_connection_and_no_job_slot(
    running: tuple[SyncContext, InProcessQueue], receiver: Receiver, backend: str
) -> None:
    sync, queue = running
    receiver.delay = 1.5
    users = [uuid.uuid4() for _ in range(4)]
    for hour in range(2):
        for user in users:
            await write(sync, user, hour)
    await until(lambda: receiver.incoming >= len(users))  # every user's head in flight at once
    if backend == "postgresql":  # SQLite's pool is not a pool of server connections
        await until(lambda: _checked_out(sync) == 0, 1)  # the last drain returns its connection
    mine = {str(u) for u in users}
    # Four POSTs in flight at once, none of them answered yet.
    assert not [p for p in receiver.pushes if _user(p) in mine]
    async with asyncio.timeout(1):  # the jobs handed on and finished: no job slot waits on a POST
        await queue.join()
    await until(lambda: len([p for p in receiver.ok() if _user(p) in mine]) >= 8)
    pushes = receiver.ok()
    for user in users:
        cursors = [
            decode(orjson.loads(p.body)["cursor"])
            for p in pushes
            if orjson.loads(p.body)["user_id"] == str(user)
        ]
        assert len(cursors) == 2
        assert cursors == sorted(cursors)


async def test_deliveries_beyond_the_slots_wait_and_the_waiting_are_bounded(
    backend: str, pg_url: str, sqlite_url: str, receiver: Receiver
) -> None:
    sync = await _context(backend, pg_url, sqlite_url, receiver.url)
    receiver.hold = asyncio.Event()
    pusher = Pusher(sync, slots=2, max_waiting=3)
    users = [uuid.uuid4() for _ in range(6)]
    try:
        for user in users:
            await write(sync, user, 0)
        await sync.feed.drainer.drain()
        await sync.feed.drainer.aclose()  # numbered, and handed to no one
        sync.feed.pusher = pusher
        pusher.start()
        pusher.wake(users[:2])
        await until(lambda: receiver.incoming >= 2)
        pusher.wake(users[2:])
        await asyncio.sleep(0.3)  # room for a third POST, if the slots let one out
        assert receiver.incoming == 2
        assert pusher.waiting == 3  # the other users wait once each, up to the bound
        assert pusher.dropped == 1  # the last stays pending in the database for the due cron
        receiver.hold.set()
        await receiver.wait_for(5)
        # The run's database holds other tests' pending pushes too: room for all of them.
        pusher.max_waiting = 100_000
        await push_due({"sync": sync})  # the due cron finds the dropped user
        mine = {str(u) for u in users}
        await until(lambda: mine <= {_user(p) for p in receiver.ok()})
    finally:
        await sync.close()


async def test_the_due_cron_never_doubles_a_waiting_user(
    backend: str, pg_url: str, sqlite_url: str, receiver: Receiver
) -> None:
    sync = await _context(backend, pg_url, sqlite_url, receiver.url)
    pusher = Pusher(sync)  # not started: only what is waiting is looked at
    users = [uuid.uuid4() for _ in range(3)]
    try:
        for user in users:
            await write(sync, user, 0)
            await write(sync, user, 1)
        await sync.feed.drainer.drain()
        await sync.feed.drainer.aclose()
        sync.feed.pusher = pusher
        for _ in range(3):
            await push_due({"sync": sync})
        assert pusher.waiting >= 3
        assert set(users) <= set(pusher._when)
        assert len(pusher._heap) == pusher.waiting  # one entry per user, however often found
    finally:
        await sync.close()


async def test_a_dead_receiver_keeps_one_retry_per_user_and_frees_everything(
    running: tuple[SyncContext, InProcessQueue], backend: str
) -> None:
    sync, queue = running
    # Nothing listens on port 9: every POST is refused at once.
    sync.settings = sync.settings.model_copy(update={"app_webhook_url": "http://127.0.0.1:9/p"})
    user = uuid.uuid4()
    for hour in range(10):
        await write(sync, user, hour)
    await sync.feed.drainer.drain()
    pusher = pusher_for(sync)
    rows: list[AppDelivery] = []
    async with asyncio.timeout(30):
        while not rows or rows[0].attempts < 2:  # refused, and refused again after its back-off
            await asyncio.sleep(0.05)
            async with sync.session_factory() as session:
                found = await session.scalars(
                    select(AppDelivery)
                    .where(AppDelivery.user_id == user)
                    .order_by(AppDelivery.change_seq)
                )
                rows = list(found.all())
    assert len(rows) == 10
    assert rows[0].attempts >= 2  # retried
    assert rows[0].next_attempt_at > utcnow()  # and retried later again
    assert all(r.attempts == 0 for r in rows[1:])  # the rest wait behind it, not tried
    assert pusher.waiting <= 1  # one timer for the user, not one per change
    async with asyncio.timeout(1):
        await queue.join()
    if backend == "postgresql":
        await until(lambda: _checked_out(sync) == 0, 1)


async def test_the_retry_day_counts_from_the_first_attempt(
    running: tuple[SyncContext, InProcessQueue], receiver: Receiver
) -> None:
    sync, _ = running
    receiver.answers = [500] * 50  # refused throughout
    user = uuid.uuid4()
    async with sync.session_factory() as session:  # queued long ago, behind an outage
        await RecordRepository(session, DataType.WORKOUT).upsert(
            user, [samples.workout(start=T0, whoop_user_id=78)]
        )
        await session.commit()
    await until(lambda: bool(receiver.pushes))
    old = utcnow() - timedelta(days=2)
    seq = await _head(sync, user)
    async with sync.session_factory() as session:
        await session.execute(
            update(AppDelivery).where(AppDelivery.change_seq == seq).values(created_at=old)
        )
        await session.commit()
    await _refuse_once_more(sync, user)
    delivery = await _delivery(sync, seq)
    assert delivery.status == "pending"  # its day began at its first attempt, minutes ago
    async with sync.session_factory() as session:  # now its first attempt is a day old
        await session.execute(
            update(AppDeliveryAttempt)
            .where(AppDeliveryAttempt.change_seq == seq)
            .values(attempted_at=old + timedelta(minutes=1))
        )
        await session.commit()
    await _refuse_once_more(sync, user)
    assert (await _delivery(sync, seq)).status == "failed"


async def _delivery(sync: SyncContext, seq: int | None) -> AppDelivery:
    async with sync.session_factory() as session:
        delivery = await session.get(AppDelivery, seq)
    assert delivery is not None
    return delivery


async def _head(sync: SyncContext, user: uuid.UUID) -> int | None:
    # A session of its own: on SQLite a read transaction cannot turn into a write once another
    # connection (the sender) has committed since it began.
    async with sync.session_factory() as session:
        seq: int | None = await session.scalar(
            select(AppDelivery.change_seq).where(AppDelivery.user_id == user)
        )
    return seq


async def _refuse_once_more(sync: SyncContext, user: uuid.UUID) -> None:
    """Make the user's head due now and wait for one more (refused) attempt."""
    seq = await _head(sync, user)
    before = (await _delivery(sync, seq)).attempts
    async with sync.session_factory() as session:
        await session.execute(
            update(AppDelivery)
            .where(AppDelivery.change_seq == seq)
            .values(next_attempt_at=utcnow())
        )
        await session.commit()
    pusher_for(sync).wake([user])
    async with asyncio.timeout(30):
        while (await _delivery(sync, seq)).attempts == before:  # noqa: ASYNC110 - a row
            await asyncio.sleep(0.02)
