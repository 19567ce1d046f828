"""Migrations upgrade and downgrade on both backends, and match the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from common.db.engine import create_engine
from common.db.migrate import downgrade, upgrade
from common.db.models import Base
from tests.databases import own_database


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names - {"alembic_version"}


async def _diff(url: str) -> list[object]:
    engine = create_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    await engine.dispose()
    return list(diff)


@pytest.fixture(params=["postgresql", "sqlite"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
        return
    async with own_database("whoopsync_mig", migrated=False) as url:
        yield url


async def test_upgrade_matches_models_and_downgrade_removes_everything(empty_url: str) -> None:
    import asyncio

    await asyncio.to_thread(upgrade, empty_url)
    assert await _tables(empty_url) == set(Base.metadata.tables)
    assert await _diff(empty_url) == []
    await asyncio.to_thread(downgrade, empty_url)
    assert await _tables(empty_url) == set()
    await asyncio.to_thread(upgrade, empty_url)
    assert await _tables(empty_url) == set(Base.metadata.tables)


async def _version(url: str, set_to: str | None = None) -> str:
    engine = create_engine(url)
    async with engine.begin() as conn:
        if set_to is not None:
            await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": set_to})
        found = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    await engine.dispose()
    return str(found)


async def test_the_revisions_are_numbered_and_a_database_named_the_old_way_upgrades(
    empty_url: str,
) -> None:
    import asyncio

    # A database migrated when the revisions after 0001 had names: it stood at `console`.
    await asyncio.to_thread(upgrade, empty_url, "0008")
    assert await _version(empty_url, set_to="console") == "console"
    await asyncio.to_thread(upgrade, empty_url)
    assert await _version(empty_url) == "0009"
    assert await _diff(empty_url) == []
