"""What every repository shares: the dialect's INSERT, which carries ON CONFLICT on both backends,
and the rider, a write that goes out with another statement of the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT for the session's backend, with `on_conflict_do_*` and `excluded`.

    `table` is a mapped class or its `__table__` (typed Any: SQLAlchemy's stubs name neither).
    """
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@dataclass(frozen=True)
class Rider:
    """A write whose result nobody reads, handed to a repository that runs a statement of the same
    transaction anyway: on PostgreSQL it rides in that statement as a CTE (one round trip for
    both), elsewhere it runs right after it (`run`).

    `stmt` is built once and kept (its compiled form is cached); `name` names its CTE and tells
    the carrier's kept statements apart; `params` must not share names with the carrier's."""

    name: str
    stmt: Any
    params: dict[str, Any]

    async def run(self, session: AsyncSession) -> None:
        """Run it on its own (no carrier, or a backend without DML in a CTE)."""
        await (await session.connection()).execute(self.stmt, self.params)

    def cte(self) -> Any:
        """Its statement as a CTE (PostgreSQL; `RETURNING 1`, which a DML CTE needs here)."""
        return self.stmt.returning(literal_column("1")).cte(self.name)
