"""The SQL a connection runs for itself: SQLite's settings when it opens and its BEGIN, and the
health check's ping. Kept with the other SQL; the engine and the ops routes call these."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


def configure_sqlite(dbapi_connection: Any, _record: Any = None) -> None:
    """WAL and a busy timeout, so that readers never block writers, and synchronous=FULL."""
    # Let SQLAlchemy, not the driver, open transactions: SAVEPOINTs then work as documented.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    # FULL: a commit is on disk before it returns. The webhook answers 204 only after the
    # event's commit, and WHOOP does not send an acknowledged event again; NORMAL would
    # let a power failure take back the last commits. WAL keeps the cost to one fsync of
    # the log per commit (bench/sqlite_durability.py measures it).
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def begin_sqlite(connection: Any) -> None:
    """Open SQLite's transaction ourselves (the driver's own handling is off)."""
    connection.exec_driver_sql("BEGIN")


async def ping(connection: AsyncConnection) -> None:
    """One round trip: `SELECT 1`."""
    await connection.execute(text("SELECT 1"))
