"""Statements that survive a database restart, without a round trip per checkout.

The hot paths (the webhook's INSERT, the read's one statement) send their SQL straight to the
asyncpg connection, past SQLAlchemy's disconnect detection. After a restart every pooled connection
is dead, and nothing would notice. `run_once_more` runs a unit of work on a pooled connection and,
when it fails because that connection was lost, does what SQLAlchemy does for its own statements:
it invalidates the connection and every pooled one opened before it (they died with the same
server), then runs the work once more on a fresh connection. No pre-ping: a healthy pool pays
nothing, and the first request after a restart pays one reconnect.

`is_outage` says whether an error means "the database is away" (answer 503) rather than a bug.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["OUTAGE_TYPES", "DatabaseUnavailable", "driver_call", "is_outage", "run_once_more"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


class DatabaseUnavailable(Exception):
    """The connection was lost mid-statement (the server restarted or went away)."""


# The exception types among which `is_outage` finds the outages (for exception handlers).
OUTAGE_TYPES: tuple[type[Exception], ...] = (DatabaseUnavailable, DBAPIError, PoolTimeout, OSError)


def _driver_outage(exc: BaseException) -> bool:
    """asyncpg's connection-level failures, recognised without importing the driver."""
    if isinstance(exc, OSError | ConnectionError | TimeoutError):
        return True
    module = type(exc).__module__
    if not module.startswith("asyncpg"):
        return False
    names = {cls.__name__ for cls in type(exc).__mro__}
    # 08xxx (connection exception), 57P0x (admin shutdown, crash shutdown, cannot connect now).
    return bool(
        names
        & {
            "PostgresConnectionError",
            "ConnectionDoesNotExistError",
            "InterfaceError",
            "OperatorInterventionError",
            "CannotConnectNowError",
        }
    )


def is_outage(exc: BaseException) -> bool:
    """True when an error means the database could not be reached or the connection was lost."""
    if isinstance(exc, DatabaseUnavailable | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    ):
        return True
    # SQLAlchemy wraps the driver's error (orig), which wraps asyncpg's own (its cause).
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if _driver_outage(seen):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


async def driver_call(connection: AsyncConnection, method: str, sql: str, *args: Any) -> Any:
    """`driver_connection.<method>(sql, *args)` on asyncpg; a lost connection is invalidated,
    with every pooled connection as old as it, and raised as DatabaseUnavailable."""
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    try:
        return await getattr(driver, method)(sql, *args)
    except Exception as exc:
        # SQLAlchemy's own test for asyncpg: the error left the connection closed.
        if not (driver.is_closed() or _driver_outage(exc)):
            raise
        # What SQLAlchemy does on a disconnect it sees: every connection of this pool opened
        # before now is replaced on its next checkout, this one at once.
        connection.sync_engine.pool._invalidate(raw, exc, _checkin=False)
        await connection.invalidate(exc)
        raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc


def _lost_connection(exc: BaseException) -> bool:
    return isinstance(exc, DatabaseUnavailable) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


async def run_once_more(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run `work` on a pooled connection; if the connection turns out lost, once more on a new one.

    A database that is still away raises on the second try (or at connect), for the caller to
    answer 503.
    """
    try:
        async with engine.connect() as connection:
            return await work(connection)
    except Exception as exc:
        if not _lost_connection(exc):
            raise
        log.info("db.reconnecting", error=type(exc).__name__)
    async with engine.connect() as connection:
        return await work(connection)
