"""PostgreSQL databases of a run's or a test's own, on the server the tests use."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg

from common.db.migrate import upgrade_async

PG_ADMIN_DSN = os.environ.get(
    "WHOOPSYNC_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def asyncpg_url(dsn: str, database: str) -> str:
    """The SQLAlchemy URL of another database on the server of `dsn`."""
    base = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def _admin(statement: str) -> None:
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def own_database(prefix: str, *, migrated: bool = True) -> AsyncIterator[str]:
    """A new database named `prefix` and a random suffix, migrated to head unless `migrated` is
    false, dropped afterwards whoever is still connected; its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        url = asyncpg_url(PG_ADMIN_DSN, name)
        if migrated:
            await upgrade_async(url)
        yield url
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
