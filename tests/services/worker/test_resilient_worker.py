"""arq's loop across a Redis that goes away: a job start that Redis refuses gives its slot back, so
the worker still starts as many jobs at once as `max_jobs` says once Redis is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.worker import func

from common.queue import ArqQueue, arq_redis
from services.worker.resilient import REDIS_FAILURES, ResilientWorker
from tests.faults.services import PrivateRedis

MAX_JOBS = 2


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    """A Redis server of this test's own, stopped at the end."""
    server = PrivateRedis()
    await server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_starts_refused_by_a_stopped_redis_leave_every_job_slot_free(
    private_redis: PrivateRedis,
) -> None:
    started = asyncio.Event()
    running: list[int] = []
    release = asyncio.Event()

    async def hold(ctx: dict[str, Any], n: int) -> None:
        running.append(n)
        if len(running) == MAX_JOBS:
            started.set()
        await release.wait()

    pool = arq_redis(private_redis.url, connect_timeout=0.5)
    worker = ResilientWorker(
        functions=[func(hold, name="hold")],
        redis_pool=pool,
        max_jobs=MAX_JOBS,
        handle_signals=False,
    )
    try:
        private_redis.stop()
        # More refused starts than there are slots: a slot kept by each would block the next.
        async with asyncio.timeout(15):
            for _ in range(MAX_JOBS + 3):
                with pytest.raises(REDIS_FAILURES):
                    await worker.start_jobs([b"lost-with-redis"])
        await private_redis.start()  # back, empty
        queue = ArqQueue(pool)
        for n in range(MAX_JOBS):
            await queue.enqueue("hold", n)
        ids = [str(j.job_id).encode() for j in await pool.queued_jobs()]
        await worker.start_jobs(ids)
        async with asyncio.timeout(10):
            await started.wait()
        assert sorted(running) == list(range(MAX_JOBS))
    finally:
        release.set()
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        await pool.aclose()
