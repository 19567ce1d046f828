"""The change feed's outbox: writers add their changes, unnumbered, inside their own transaction
(`changes` numbers them into the feed)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import ChangeOutbox
from common.db.types import utcnow
from common.types import DataType

__all__ = ["DELETED", "OUTBOX_COLUMNS", "UPSERTED", "ChangeRecorder", "upserted_changes"]

UPSERTED, DELETED = "upserted", "deleted"


def upserted_changes(
    data_type: DataType, user_id: uuid.UUID, key: str, rows: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The outbox rows of records just inserted or updated (the rows the guarded upsert wrote)."""
    now = utcnow()
    return [
        {
            "user_id": user_id,
            "whoop_user_id": row["whoop_user_id"],
            "data_type": data_type.value,
            "action": UPSERTED,
            "record_id": str(row[key]),
            "updated_at": row["updated_at"],
            "data": row["data"],
            "changed_at": now,
        }
        for row in rows
    ]


class ChangeRecorder:
    """Adds changes to the outbox inside the writer's own transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upserted(
        self, data_type: DataType, user_id: uuid.UUID, key: str, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Record records just inserted or updated (the rows the guarded upsert wrote)."""
        await self.add(upserted_changes(data_type, user_id, key, rows))

    async def deleted(
        self,
        data_type: DataType,
        user_id: uuid.UUID,
        rows: Iterable[tuple[Any, int]],
        at: datetime | None = None,
    ) -> None:
        """Record records just deleted, as (key, whoop_user_id) pairs; `at` is the deletion's
        version time (its tombstone's), which the change carries as `updated_at` (default: now)."""
        now = utcnow()
        await self.add(
            [
                {
                    "user_id": user_id,
                    "whoop_user_id": whoop_user_id,
                    "data_type": data_type.value,
                    "action": DELETED,
                    "record_id": str(key),
                    "updated_at": at or now,
                    "data": None,
                    "changed_at": now,
                }
                for key, whoop_user_id in rows
            ]
        )

    async def lifecycle(
        self,
        user_id: uuid.UUID,
        whoop_user_id: int,
        action: str,
        at: datetime,
        data: str | None,
    ) -> None:
        """Record a lifecycle change (`connection.created` …): no data type, no record id."""
        await self.add(
            [
                {
                    "user_id": user_id,
                    "whoop_user_id": whoop_user_id,
                    "data_type": None,
                    "action": action,
                    "record_id": None,
                    "updated_at": at,
                    "data": data,
                    "changed_at": utcnow(),
                }
            ]
        )

    async def add(self, values: list[dict[str, Any]]) -> None:
        """Record outbox rows made beforehand (`upserted_changes`), in one statement (the change
        feed sees it and drains after the commit, `common.feed.feed.ChangeFeed`)."""
        if values:
            # Through the session (its feed watches the session's outbox inserts), as a Core
            # insert of the table: no ORM bulk-insert bookkeeping for rows it never loads.
            await self.session.execute(_OUTBOX_INSERT, values)


OUTBOX_COLUMNS = (
    "user_id",
    "whoop_user_id",
    "data_type",
    "action",
    "record_id",
    "updated_at",
    "data",
    "changed_at",
)


_OUTBOX_INSERT = insert(ChangeOutbox)
