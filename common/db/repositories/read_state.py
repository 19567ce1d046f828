"""The read API's one-query look at a user: the WHOOP connection joined with one type's sync state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.models import SyncLog, WhoopConnection
from common.types import ConnectionStatus, DataType, SyncStatus


@dataclass(frozen=True)
class ReadState:
    """What a read needs to choose between cache and WHOOP."""

    connection_status: ConnectionStatus
    last_sync_at: datetime | None
    sync_status: SyncStatus


class ReadStateRepository:
    """Connection plus sync log in one round trip (the hot path of every cached read)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: uuid.UUID, data_type: DataType) -> ReadState | None:
        """The state of one user and type; None when the user has no WHOOP connection."""
        stmt = (
            select(
                WhoopConnection.status,
                SyncLog.last_sync_at,
                SyncLog.sync_status,
            )
            .select_from(WhoopConnection)
            .outerjoin(
                SyncLog,
                and_(
                    SyncLog.user_id == WhoopConnection.user_id, SyncLog.data_type == data_type.value
                ),
            )
            .where(WhoopConnection.user_id == user_id)
        )
        row = (await self.session.execute(stmt)).first()
        if row is None:
            return None
        status, last_sync_at, sync_status = row
        return ReadState(
            connection_status=ConnectionStatus(status),
            last_sync_at=last_sync_at,
            sync_status=SyncStatus(sync_status or SyncStatus.NEVER_SYNCED),
        )
