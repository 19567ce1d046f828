"""Alembic environment: async engines, batch mode on SQLite so that ALTERs work there too."""

from __future__ import annotations

import asyncio
from typing import Literal

from alembic import context
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


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
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
