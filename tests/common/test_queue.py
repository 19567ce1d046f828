"""The in-process queue: the same job functions, arq's retry policy, bounded concurrency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from arq import Retry
from arq.connections import ArqRedis

from common.queue import ArqQueue, InProcessQueue, JobSpec, QueueUnavailable, arq_redis
from services.simulator.server import free_port


async def test_retries_a_job_that_asks_for_it_until_it_succeeds() -> None:
    tries: list[int] = []

    async def flaky(ctx: dict[str, Any], value: int) -> None:
        tries.append(ctx["job_try"])
        if len(tries) < 3:
            raise Retry(defer=0.01)

    queue = InProcessQueue({"flaky": JobSpec("flaky", flaky, max_tries=5, timeout=5)}, {})
    queue.start()
    await queue.enqueue("flaky", 1)
    async with asyncio.timeout(5):
        await queue.join()
    await queue.close()
    assert tries == [1, 2, 3]


async def test_stops_after_max_tries() -> None:
    tries: list[int] = []

    async def always(ctx: dict[str, Any]) -> None:
        tries.append(ctx["job_try"])
        raise Retry(defer=0)

    queue = InProcessQueue({"always": JobSpec("always", always, max_tries=3, timeout=5)}, {})
    queue.start()
    await queue.enqueue("always")
    async with asyncio.timeout(5):
        await queue.join()
    await queue.close()
    assert tries == [1, 2, 3]


async def test_runs_at_most_concurrency_jobs_at_once() -> None:
    running, peak = 0, 0

    async def slow(ctx: dict[str, Any], _n: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    queue = InProcessQueue(
        {"slow": JobSpec("slow", slow, max_tries=1, timeout=5)}, {}, concurrency=3
    )
    queue.start()
    for n in range(12):
        await queue.enqueue("slow", n)
    async with asyncio.timeout(5):
        await queue.join()
    await queue.close()
    assert peak == 3


async def test_a_job_past_its_timeout_is_ended() -> None:
    async def hangs(ctx: dict[str, Any]) -> None:
        await asyncio.sleep(10)

    queue = InProcessQueue({"hangs": JobSpec("hangs", hangs, max_tries=1, timeout=0.05)}, {})
    queue.start()
    await queue.enqueue("hangs")
    async with asyncio.timeout(2):
        await queue.join()
    await queue.close()


async def test_arq_queue_reports_redis_down_quickly() -> None:
    redis = arq_redis(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5)
    with pytest.raises(QueueUnavailable):
        await ArqQueue(redis, timeout=1.0).enqueue("process_webhook_event", 1)
    await redis.aclose()


@pytest.fixture
async def pool(redis_url: str, redis: aioredis.Redis) -> AsyncIterator[ArqRedis]:
    """An arq client on the flushed test index."""
    client = arq_redis(redis_url)
    yield client
    await client.aclose()


async def test_arq_queue_writes_jobs_arq_reads_now_and_deferred(
    pool: ArqRedis, redis: aioredis.Redis
) -> None:
    queue = ArqQueue(pool)
    before = time.time() * 1000
    await queue.enqueue("process_webhook_event", 7)
    await queue.enqueue("sync_type", "u", "sleep", "read", _defer_by=30)
    jobs = sorted(await pool.queued_jobs(), key=lambda j: j.score or 0)
    assert [(j.function, j.args, j.kwargs) for j in jobs] == [
        ("process_webhook_event", (7,), {}),
        ("sync_type", ("u", "sleep", "read"), {}),
    ]
    now_job, later = jobs
    assert now_job.score is not None
    assert later.score is not None
    assert before - 1 <= now_job.score <= time.time() * 1000
    assert later.score - later.enqueue_time.timestamp() * 1000 == pytest.approx(30_000, abs=2)
    ttl = await redis.pttl(f"arq:job:{later.job_id}")
    assert 86_400_000 + 25_000 < ttl <= 86_400_000 + 30_000  # arq's expiry: a day after it is due


async def test_arq_queue_says_since_when_its_oldest_due_job_waits_for_a_worker(
    pool: ArqRedis, redis: aioredis.Redis
) -> None:
    queue = ArqQueue(pool)
    assert await queue.waiting_since() is None
    await queue.enqueue("sync_type", "u", "sleep", "read", _defer_by=30)
    assert await queue.waiting_since() is None  # deferred: not due yet
    await queue.enqueue("process_webhook_event", 1)
    await asyncio.sleep(0.05)
    await queue.enqueue("process_webhook_event", 2)
    first, second = sorted(
        (j for j in await pool.queued_jobs() if j.function == "process_webhook_event"),
        key=lambda j: j.score or 0,
    )
    assert await queue.waiting_since() == pytest.approx((first.score or 0) / 1000)
    # A worker started the first one: arq keeps it in the queue under an in-progress key.
    await redis.set(f"arq:in-progress:{first.job_id}", b"1")
    assert await queue.waiting_since() == pytest.approx((second.score or 0) / 1000)
    await redis.set(f"arq:in-progress:{second.job_id}", b"1")
    assert await queue.waiting_since() is None


async def test_arq_queue_that_cannot_say_how_far_behind_it_is_is_unavailable() -> None:
    redis = arq_redis(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5)
    with pytest.raises(QueueUnavailable):
        await ArqQueue(redis, timeout=1.0).waiting_since()
    await redis.aclose()


async def test_in_process_queue_says_since_when_its_oldest_job_waits_for_a_runner() -> None:
    ran: list[int] = []
    both = asyncio.Event()

    async def job(ctx: dict[str, Any], value: int) -> None:
        ran.append(value)
        if len(ran) == 2:
            both.set()

    queue = InProcessQueue({"job": JobSpec("job", job, max_tries=1, timeout=5)}, {})
    assert await queue.waiting_since() is None
    before = time.time()
    await queue.enqueue("job", 1)
    await queue.enqueue("job", 2)
    await queue.enqueue("job", 3, _defer_by=30)
    since = await queue.waiting_since()
    assert since is not None
    assert before <= since <= time.time()
    queue.start()
    async with asyncio.timeout(5):
        await both.wait()
    assert await queue.waiting_since() is None  # the deferred one is not due
    await queue.close()
