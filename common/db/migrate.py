"""Bring a database schema to head (or down) with Alembic, from code."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

_HERE = Path(__file__).resolve().parent


def migrations_dir() -> Path:
    """The Alembic scripts: shipped in the installed package (`common/db/migrations`, see
    pyproject's force-include), else the checkout's `migrations/` beside `common/`."""
    packaged = _HERE / "migrations"
    return packaged if (packaged / "env.py").is_file() else _HERE.parents[1] / "migrations"


MIGRATIONS_DIR = migrations_dir()


def alembic_config(database_url: str, pooler: str = "none") -> Config:
    """An Alembic config pointing at our migrations and at this database (reached through a
    transaction-pooling proxy when `pooler` is `transaction`)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(year)d-%%(month).2d-%%(day).2d_%%(slug)s")
    config.attributes["database_url"] = database_url
    config.attributes["database_pooler"] = pooler
    return config


def upgrade(database_url: str, revision: str = "head", *, pooler: str = "none") -> None:
    """Migrate the schema up to `revision` (blocking; run it off the event loop)."""
    command.upgrade(alembic_config(database_url, pooler), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Migrate the schema down to `revision` (blocking)."""
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head", *, pooler: str = "none") -> None:
    """`upgrade` from inside a running event loop."""
    await asyncio.to_thread(upgrade, database_url, revision, pooler=pooler)
