"""Alembic environment: async engines, batch mode on SQLite so that ALTERs work there too."""

from __future__ import annotations

import asyncio
from typing import Literal

from alembic import context
from sqlalchemy import column, inspect, table
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from common.db.engine import create_engine
from common.db.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from common.config import get_settings

        url = get_settings().database_url
    return str(url)


def _pooler() -> Literal["none", "transaction"]:
    pooler = config.attributes.get("database_pooler")
    if pooler is None:
        from common.config import get_settings

        return get_settings().database_pooler
    return "transaction" if pooler == "transaction" else "none"


# The revisions after 0001 were once named by their subject; a database migrated then is
# carried over to the numbered ids before Alembic reads where it stands.
RENUMBERED = {
    "faults": "0002",
    "accounts": "0003",
    "data": "0004",
    "economy": "0005",
    "feed": "0006",
    "lifecycle": "0007",
    "console": "0008",
}


def _renumber(connection: Connection) -> None:
    if not inspect(connection).has_table("alembic_version"):
        return
    versions = table("alembic_version", column("version_num"))
    for old, new in RENUMBERED.items():
        connection.execute(
            versions.update().where(versions.c.version_num == old).values(version_num=new)
        )


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        _renumber(connection)
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_url(), pooler=_pooler(), poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
