"""What every repository shares: the dialect's INSERT, which carries ON CONFLICT on both backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT for the session's backend, with `on_conflict_do_*` and `excluded`.

    `table` is a mapped class or its `__table__` (typed Any: SQLAlchemy's stubs name neither).
    """
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
