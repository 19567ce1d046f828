"""What surviving a PostgreSQL restart costs the read hot path, next to the alternatives.

.venv/bin/python -m bench.reconnect [--reads 5000]

The cached read's one statement (30 sleeps of a seeded user) is run `--reads` times, one after the
other, on a pool of its own, three ways, interleaved in rounds so that the machine's drift touches
each alike:
- bare: the statement straight on the asyncpg connection, as the first wave did (it never notices
  a connection a restart broke: the baseline);
- guarded: `run_once_more` + `driver_call`, what the product runs (a broken connection is
  invalidated with the pool and the work runs once more);
- pre_ping: SQLAlchemy's `pool_pre_ping=True` with the bare statement (a round trip per checkout).

Prints each way's mean and p99 per read, and its ratio to the bare baseline of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bench.infra import asyncpg_url, bench_database
from bench.seed import seed_cached_reader
from common.db.engine import create_engine
from common.db.repositories.read_state import ReadStateRepository, Window, _postgres_sql
from common.db.resilient import run_once_more
from common.db.types import utcnow
from common.types import DataType

ROUNDS = 10
Read = Callable[[], Awaitable[Any]]


def _args(user_id: uuid.UUID) -> list[Any]:
    fresh_after = utcnow() - timedelta(hours=2)
    return [user_id, fresh_after, 30, None, None, None]


def bare(engine: AsyncEngine, user_id: uuid.UUID) -> Read:
    """The statement on the driver connection, no guard."""
    sql = _postgres_sql(DataType.SLEEP, has_start=False, has_end=False)

    async def read() -> Any:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            return await driver.fetchrow(sql, *_args(user_id))

    return read


def guarded(engine: AsyncEngine, user_id: uuid.UUID) -> Read:
    """What the product runs."""
    window = Window(30, None, None)

    async def work(connection: AsyncConnection) -> Any:
        fresh_after = utcnow() - timedelta(hours=2)
        return await ReadStateRepository(connection).read(
            user_id, DataType.SLEEP, window, fresh_after, None
        )

    async def read() -> Any:
        return await run_once_more(engine, work)

    return read


async def _timed(read: Read, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        began = time.perf_counter()
        found = await read()
        timings.append(time.perf_counter() - began)
        assert found is not None
    return timings


async def main(reads: int) -> None:
    """Seed one reader, then time the three ways in interleaved rounds."""
    async with bench_database("reconnect") as database:
        user_id = await seed_cached_reader(database)
        url = asyncpg_url(database)
        engines = {
            "bare": create_engine(url, pool_size=4),
            "guarded": create_engine(url, pool_size=4),
            "pre_ping": create_engine(url, pool_size=4, pool_pre_ping=True),
        }
        ways = {
            "bare": bare(engines["bare"], user_id),
            "guarded": guarded(engines["guarded"], user_id),
            "pre_ping": bare(engines["pre_ping"], user_id),
        }
        timings: dict[str, list[float]] = {name: [] for name in ways}
        try:
            for read in ways.values():
                await _timed(read, 200)  # warm the pools and the statement caches
            for _ in range(ROUNDS):
                for name, read in ways.items():
                    timings[name] += await _timed(read, reads // ROUNDS)
        finally:
            for engine in engines.values():
                await engine.dispose()
    baseline = statistics.fmean(timings["bare"])
    for name, values in timings.items():
        values.sort()
        mean = statistics.fmean(values)
        p99 = values[int(len(values) * 0.99)]
        print(
            f"{name:<9} mean {mean * 1e6:7.1f} µs  p99 {p99 * 1e6:7.1f} µs  "
            f"{mean / baseline:5.2f}x bare"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=5000)
    asyncio.run(main(parser.parse_args().reads))
