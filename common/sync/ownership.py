"""Ownership in the write (SPEC §4): a record goes to the app user holding its WHOOP account when
the write commits.

A fetch resolves the app user before it calls WHOOP, and the account may move (the POST callback),
switch away (the user links another account) or be erased before its write. So the write decides
again, inside its own transaction: it first locks the connection row of the WHOOP account
(`ConnectionRepository.hold`, once per write) and writes to whoever holds it then; with no holder
it writes nothing. A move, a switch or an erase updates or deletes that row, so it either waits
for the write to commit (and then moves or deletes what it wrote) or commits first (and the write
sees it). A write that deletes holds the row exclusively, so deletes and upserts of one account
take turns: whichever commits second sees the other's rows and tombstones.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from common import tracing
from common.db.repositories import ConnectionRepository, RecordRepository, UpsertSummary
from common.db.repositories.base import Rider
from common.db.repositories.connections import Holder
from common.db.repositories.outbox import ChangeRecorder
from common.sync.results import ALL_TYPES, Writes
from common.types import DataType

__all__ = ["Written", "holds", "upsert_owned", "write_owned"]

log = structlog.get_logger(__name__)


@dataclass
class Written:
    """What one write did: who held the account, and each type's upsert summary."""

    holder: Holder | None
    summaries: dict[DataType, UpsertSummary] = field(default_factory=dict)
    # The rider went out with the write (else the caller still has it to run).
    carried: bool = False

    @property
    def counts(self) -> dict[DataType, int]:
        """Records written (inserted or updated) per type."""
        return {data_type: s.written for data_type, s in self.summaries.items()}


async def write_owned(
    session: AsyncSession,
    resolved: uuid.UUID,
    writes: Writes,
    *,
    account: int | None = None,
    rider: Rider | None = None,
) -> Written:
    """Deletes, then guarded upserts, of what a fetch for `resolved` collected, all to the holder
    of the WHOOP account (`account`, else the objects' own) at the write; one outbox statement
    for every record written. Nothing is written for an account nobody holds.

    `rider` (the sync log of `resolved`'s fetch) goes out with the last upsert, only while
    `resolved` is the holder: otherwise, or with nothing to upsert, `carried` stays False and
    the caller decides what to do with it."""
    accounts = {int(obj["user_id"]) for objects in writes.upserts.values() for obj in objects}
    if account is not None:
        accounts.add(account)
    connections = ConnectionRepository(session)
    exclusive = bool(writes.deletes)
    holders: dict[int, Holder | None] = {}
    for whoop_user_id in sorted(accounts):  # one order everywhere: no two writes deadlock
        holders[whoop_user_id] = await connections.hold(
            whoop_user_id=whoop_user_id, exclusive=exclusive
        )
    if account is not None:
        holder = holders[account]
    elif len(holders) == 1:
        (holder,) = holders.values()
    else:
        holder = await connections.hold(user_id=resolved, exclusive=exclusive)
    _note_moved(resolved, holder, writes)
    written = Written(holder)
    if holder is not None:
        for data_type, column, value in writes.deletes:
            bury_absent = (data_type, column, value) not in writes.unannounced
            await RecordRepository(session, data_type).delete_where(
                holder.user_id, column, value, bury_absent=bury_absent
            )
    outbox: list[dict[str, Any]] = []
    upserts = [
        (data_type, owner, objects)
        for data_type in ALL_TYPES
        for whoop_user_id, objects in _by_account(writes.upserts.get(data_type, ())).items()
        if (owner := holders.get(whoop_user_id)) is not None
    ]
    carrier = len(upserts) - 1 if holder is not None and holder.user_id == resolved else -1
    for data_type in ALL_TYPES:
        if data_type in writes.upserts:
            written.summaries[data_type] = UpsertSummary()
    for n, (data_type, owner, objects) in enumerate(upserts):
        repo = RecordRepository(session, data_type)
        carried = rider if n == carrier else None
        with tracing.span(f"upsert {data_type.value}"):
            done = await repo.upsert(owner.user_id, objects, outbox=outbox, rider=carried)
        written.summaries[data_type].results.update(done.results)
        written.carried = written.carried or carried is not None
    await ChangeRecorder(session).add(outbox)
    return written


async def upsert_owned(
    session: AsyncSession,
    data_type: DataType,
    objects: Iterable[Mapping[str, Any]],
    resolved: uuid.UUID,
) -> UpsertSummary:
    """The guarded upsert of `objects`, each to the current holder of its WHOOP account
    (`resolved` is whom the fetch was for); objects of an account nobody holds are dropped."""
    writes = Writes()
    for obj in objects:
        writes.upsert(data_type, obj)
    written = await write_owned(session, resolved, writes)
    return written.summaries.get(data_type, UpsertSummary())


async def holds(session: AsyncSession, user_id: uuid.UUID) -> bool:
    """True while the user holds a connection (locked until the transaction ends)."""
    return await ConnectionRepository(session).hold(user_id=user_id) is not None


def _by_account(objects: Iterable[Mapping[str, Any]]) -> dict[int, list[Mapping[str, Any]]]:
    grouped: dict[int, list[Mapping[str, Any]]] = {}
    for obj in objects:
        grouped.setdefault(int(obj["user_id"]), []).append(obj)
    return grouped


def _note_moved(resolved: uuid.UUID, holder: Holder | None, writes: Writes) -> None:
    if holder is None or holder.user_id != resolved:
        log.info(
            "sync.owner_changed",
            fetched_for=str(resolved),
            holder=str(holder.user_id) if holder else None,
            records=sum(len(objects) for objects in writes.upserts.values()),
        )
