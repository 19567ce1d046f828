"""The backfill of a newly linked account (SPEC §3.2), its progress, and its back-off.

The progress lives on the connection row (`backfill_*`), so every process and the API see it
move: each page WHOOP returns is written and committed, and its records counted, before the next
page is asked for. The backfill yields at each of those points and its job commits
(`common.sync.jobs.backfill.run_backfill`). A backfill that could not start or finish stays due
(`backfill_pending_since`) and is finished later by reconciliation, type by type: types already
done are not fetched again.

A type that keeps failing for a reason that will not pass by itself (a 403, another 4xx) backs off
per user and type (`RETRY_BASE` times 4 to the failures before); after `MAX_FAILURES` the type is given up and, once every
other type is done or given up, the backfill is recorded `failed` with its error and stops being
due: only the user's next audit (which asks for it again) or a new link starts it over. Failures
that pass (5xx, timeouts, the budget) are retried as before, without back-off.

When the backfill ends, done or failed, a `backfill.completed` change carries the backfill object.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import WhoopConnection
from common.db.repositories import ChannelRepository, ConnectionRepository
from common.db.types import utcnow
from common.feed.lifecycle import BACKFILL_COMPLETED, record_lifecycle
from common.ratelimit import Priority
from common.sync.results import ALL_TYPES, SyncResult, status_of
from common.types import ConnectionStatus, DataType, SyncStatus, Trigger
from common.whoop.errors import (
    WhoopAuthError,
    WhoopClientError,
    WhoopError,
    WhoopNotFound,
    WhoopReauthorizationRequired,
)
from common.whoop.resources import PAGE_SIZE

if TYPE_CHECKING:
    from common.sync.service import SyncService

__all__ = ["MAX_FAILURES", "RETRY_BASE", "Backfill", "backfill_view", "restart_failed"]

log = structlog.get_logger(__name__)

MAX_FAILURES = 3
RETRY_BASE = timedelta(minutes=10)
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


def _progress(text: str | None) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(text) if text else {}
    loaded.setdefault("records", {t.value: 0 for t in DataType})
    loaded.setdefault("done", [])
    loaded.setdefault("given_up", [])
    loaded.setdefault("failures", {})
    loaded.setdefault("retry_at", {})
    return loaded


def backfill_view(connection: WhoopConnection) -> dict[str, Any]:
    """The backfill object of SPEC §3.2 for a connection row (also for the admin pages)."""
    progress = _progress(connection.backfill_progress)
    return {
        "status": connection.backfill_status,
        "days": connection.backfill_days,
        "started_at": connection.backfill_started_at,
        "finished_at": connection.backfill_finished_at,
        "records": {t.value: int(progress["records"].get(t.value, 0)) for t in DataType},
        "error": connection.backfill_error,
    }


def _persistent(error: WhoopError) -> bool:
    """A failure that will not pass by itself: a 4xx other than a 429 or a refused refresh."""
    if isinstance(error, WhoopReauthorizationRequired):
        return False
    return isinstance(error, WhoopClientError | WhoopNotFound | WhoopAuthError)


class Backfill:
    """One user's backfill over a sync service's session. `steps()` yields each time the work so
    far must be committed, for every process to see: the backfill marked running, each page
    written with its count, each type's end. The caller (a job) commits at each step; `results`
    holds the results of the types tried."""

    def __init__(self, service: SyncService, user_id: uuid.UUID, days: int | None = None) -> None:
        self.service, self.user_id, self.days = service, user_id, days
        self.results: list[SyncResult] = []

    async def steps(self) -> AsyncIterator[None]:
        """Pull every collection not done yet over the last `days` (BACKFILL_DAYS), page by page,
        at background priority; yields where the caller commits."""
        service, user_id = self.service, self.user_id
        connections = ConnectionRepository(service.session)
        row = await connections.get(user_id)
        yield  # end the read: on SQLite a write after it could meet a stale snapshot
        if row is None or row.status != ConnectionStatus.ACTIVE.value:
            return
        due, now = row.backfill_pending_since, utcnow()
        fresh = due is None or row.backfill_status in (DONE, FAILED)  # asked for afresh: start over
        progress = _progress(None if fresh else row.backfill_progress)
        started_at = None if fresh else row.backfill_started_at
        days = service.settings.backfill_days if self.days is None else self.days
        await connections.set_backfill(
            user_id,
            backfill_status=RUNNING,
            backfill_days=days,
            backfill_started_at=started_at or now,
            backfill_finished_at=None,
            backfill_error=None,
            backfill_progress=orjson.dumps(progress).decode(),
        )
        yield
        since = now - timedelta(days=days)
        for data_type in ALL_TYPES:
            name = data_type.value
            if name in progress["done"] or name in progress["given_up"]:
                continue
            retry_at = progress["retry_at"].get(name)
            if retry_at is not None and datetime.fromisoformat(retry_at) > now:
                continue  # backing off
            typed = _TypeBackfill(service, user_id, data_type, since, progress)
            async for _ in typed.steps():
                yield
            assert typed.result is not None
            self.results.append(typed.result)
            _note(progress, data_type, typed.result, utcnow())
            await connections.set_backfill(
                user_id, backfill_progress=orjson.dumps(progress).decode()
            )
            yield
        await _conclude(service, user_id, due, progress)
        yield


def _note(progress: dict[str, Any], data_type: DataType, result: SyncResult, now: datetime) -> None:
    name = data_type.value
    if result.ok:
        progress["done"].append(name)
        progress["failures"].pop(name, None)
        progress["retry_at"].pop(name, None)
        return
    assert result.error is not None
    if not _persistent(result.error):
        return  # passes by itself: retried by the job and by reconciliation, as before
    failures = int(progress["failures"].get(name, 0)) + 1
    progress["failures"][name] = failures
    progress.setdefault("errors", {})[name] = result.error.reason
    if failures >= MAX_FAILURES:
        progress["given_up"].append(name)
        progress["retry_at"].pop(name, None)
    else:
        progress["retry_at"][name] = (now + RETRY_BASE * 4 ** (failures - 1)).isoformat()
    log.warning(
        "backfill.type_failed", data_type=name, failures=failures, error=result.error.reason
    )


async def _conclude(
    service: SyncService, user_id: uuid.UUID, due: datetime | None, progress: dict[str, Any]
) -> None:
    """Record the backfill done or failed once every type is; else it stays due (pending). The
    caller commits."""
    session = service.session
    connections = ConnectionRepository(session)
    settled = set(progress["done"]) | set(progress["given_up"])
    if not settled >= {t.value for t in DataType}:
        await connections.set_backfill(user_id, backfill_status=PENDING)
        return
    failed = bool(progress["given_up"])
    errors = progress.get("errors", {})
    error = "; ".join(f"{t}: {errors.get(t, 'failed')}" for t in progress["given_up"]) or None
    await connections.set_backfill(
        user_id,
        backfill_status=FAILED if failed else DONE,
        backfill_finished_at=utcnow(),
        backfill_error=error,
    )
    await ChannelRepository(session).finish_backfill(user_id, due)
    row = await connections.get(user_id)
    if row is not None:
        await record_lifecycle(
            session,
            user_id=user_id,
            whoop_user_id=row.whoop_user_id,
            action=BACKFILL_COMPLETED,
            at=utcnow(),
            record=_jsonable(backfill_view(row)),
        )
    log.info("backfill.finished", user_id=str(user_id), status=row.backfill_status if row else None)


def _jsonable(view: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in view.items()}


class _TypeBackfill:
    """One collection, written and counted page by page; the attempt recorded at the end.
    `steps()` yields after each page and after the attempt (the caller commits); `result` is
    set once it is done."""

    def __init__(
        self,
        service: SyncService,
        user_id: uuid.UUID,
        data_type: DataType,
        since: datetime,
        progress: dict[str, Any],
    ) -> None:
        self.service, self.user_id, self.data_type = service, user_id, data_type
        self.since, self.progress = since, progress
        self.page: list[Mapping[str, Any]] = []
        self.written = 0
        self.result: SyncResult | None = None

    async def _write_page(self) -> None:
        name = self.data_type.value
        self.progress["records"][name] += len(self.page)
        # The progress first: its row lock comes before the write's share lock on the same row,
        # so two backfills of one user never deadlock upgrading their share locks.
        await ConnectionRepository(self.service.session).set_backfill(
            self.user_id, backfill_progress=orjson.dumps(self.progress).decode()
        )
        summary = await self.service.write(self.user_id, self.data_type, self.page)
        self.written += summary.written
        self.page = []

    async def steps(self) -> AsyncIterator[None]:
        """Fetch the collection since `since`, yielding after each page written (to commit)."""
        service, user_id, data_type = self.service, self.user_id, self.data_type
        started, clock = utcnow(), time.monotonic()
        client = service.client(user_id, Priority.BACKGROUND)
        fetched = 0
        self.progress["records"][data_type.value] = 0
        try:
            async for model in client.collection(data_type, start=self.since):
                self.page.append(model.raw)
                fetched += 1
                if len(self.page) >= PAGE_SIZE:
                    await self._write_page()
                    yield
            if self.page:
                await self._write_page()
                yield
        except WhoopError as exc:
            if self.page:
                await self._write_page()
                yield
            status = status_of(exc)
            await service.record(
                user_id, data_type, Trigger.BACKFILL, status, fetched, started, clock, exc.reason
            )
            yield
            self.result = SyncResult(data_type, fetched, self.written, started, exc, status)
            return
        await service.record(
            user_id, data_type, Trigger.BACKFILL, SyncStatus.SUCCESS, fetched, started, clock
        )
        yield
        self.result = SyncResult(data_type, fetched, self.written, started)


async def restart_failed(session: AsyncSession, user_id: uuid.UUID) -> bool:
    """Make a failed backfill due again (the user's audit asks for it), flushed, not committed;
    True when it was failed."""
    return await ConnectionRepository(session).restart_failed_backfill(user_id)
