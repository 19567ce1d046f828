"""Test harness: a fresh PostgreSQL database and a fresh SQLite file per run, migrated once;
every test inside a transaction rolled back at teardown; Redis on a database index of its own,
flushed per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from common.db.engine import create_engine
from common.db.migrate import upgrade_async
from services.simulator.config import SimConfig
from services.simulator.server import RunningSim, serve_in_background
from tests.databases import own_database
from tests.tables import empty_all

REDIS_BASE = os.environ.get("WHOOPSYNC_TEST_REDIS", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("WHOOPSYNC_TEST_REDIS_DB", "15"))
BACKENDS = ["postgresql", "sqlite"]


@pytest.fixture(scope="session")
async def pg_url() -> AsyncIterator[str]:
    """A PostgreSQL database of this run's own, migrated to head, dropped afterwards."""
    async with own_database("whoopsync_test") as url:
        yield url


@pytest.fixture(scope="session")
async def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file of this run's own, migrated to head."""
    path: Path = tmp_path_factory.mktemp("sqlite") / "whoop-sync.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_async(url)
    return url


@pytest.fixture(scope="session")
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """The engine of the run's PostgreSQL database."""
    engine = create_engine(pg_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    """The engine of the run's SQLite database."""
    engine = create_engine(sqlite_url)
    yield engine
    await engine.dispose()


async def _rolled_back_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@pytest.fixture
async def session(pg_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A PostgreSQL session whose work is rolled back at teardown (commits become savepoints)."""
    async for s in _rolled_back_session(pg_engine):
        yield s


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn, for tests that must hold on PostgreSQL and SQLite alike."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, pg_url: str, sqlite_url: str) -> str:
    """The run's database URL of the `backend` parameter."""
    return pg_url if backend == "postgresql" else sqlite_url


@pytest.fixture
def database_engine(
    backend: str, pg_engine: AsyncEngine, sqlite_engine: AsyncEngine
) -> AsyncEngine:
    """The run's engine of the `backend` parameter."""
    return pg_engine if backend == "postgresql" else sqlite_engine


@pytest.fixture
async def empty_database(database_engine: AsyncEngine) -> AsyncIterator[None]:
    """The `backend` parameter's database emptied before and after the test, for tests that
    commit and then read every row (exports, the change feed's horizon)."""
    async with database_engine.begin() as connection:
        await empty_all(connection)
    yield
    async with database_engine.begin() as connection:
        await empty_all(connection)


@pytest.fixture
async def any_session(database_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A rolled-back session on the backend of the `backend` parameter."""
    async for s in _rolled_back_session(database_engine):
        yield s


@pytest.fixture
def redis_url() -> str:
    """The Redis URL of the test database index."""
    return f"{REDIS_BASE}/{REDIS_DB}"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A Redis client on the test index, flushed before and after the test."""
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def whoop_sim_config() -> SimConfig:
    """The simulator's configuration for `whoop_sim`; override it in a test module to change it."""
    return SimConfig(
        client_id="test-client",
        client_secret="test-secret",
        users=5,
        days=14,
        seed=7,
        rate_limit_per_minute=100_000,
        rate_limit_per_day=1_000_000,
        webhook_retry_delays=(0.05,) * 5,
    )


@pytest.fixture
async def whoop_sim(whoop_sim_config: SimConfig) -> AsyncIterator[RunningSim]:
    """The WHOOP simulator over real HTTP on a free port (`.base_url`, `.api_base_url`,
    `.oauth_base_url`, `.sim` for its state and control)."""
    async with serve_in_background(whoop_sim_config) as running:
        yield running


def _plain_test_logging() -> None:
    """structlog's defaults, but tracebacks as plain text: the default rich rendering with every
    frame's locals takes about a second per logged exception and would print secrets held there."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
        ]
    )


_plain_test_logging()


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> object:
    """A test that calls `configure_logging` (e.g. through a command, under capsys) must not leave
    structlog printing to its captured, by then closed, stderr for every later test."""
    import logging

    import structlog

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    _plain_test_logging()
    root.handlers[:] = handlers
    root.setLevel(level)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say how many cases the fuzz tests generated (schemathesis over the api, hypothesis over the
    webhook)."""
    from tests.fuzzing import summary

    lines = summary()
    if lines:
        terminalreporter.section("fuzzing")
        for line in lines:
            terminalreporter.write_line(line)
