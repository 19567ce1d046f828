"""The naive pipeline's receiver (bench 3's baseline at 200/s): a signed webhook becomes one arq job
for the naive worker on its queue; a bad signature is refused and queues nothing."""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from bench.baselines.webhook_app import create_queueing_app
from bench.webhooks import signed

QUEUE = "bench:test-naive"
RECORD = "a0c2f5f4-3a61-4f56-9b7c-0d2d9b0f9c11"


@pytest.fixture
async def client(
    redis_url: str, redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("BENCH_SECRET", "secret")
    monkeypatch.setenv("BENCH_REDIS_URL", redis_url)
    monkeypatch.setenv("BENCH_QUEUE", QUEUE)
    app = create_queueing_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            yield c


async def _sent(client: httpx.AsyncClient, secret: str) -> int:
    """POST a sleep.updated for RECORD signed with `secret`; the status code."""
    hook = signed(secret, 42, RECORD, "sleep.updated")
    answer = await client.post("/webhooks/whoop", content=hook.body, headers=hook.headers())
    return answer.status_code


async def test_a_signed_webhook_becomes_one_job_for_the_naive_worker(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    assert await _sent(client, "secret") == 204
    job_ids = await redis.zrange(QUEUE, 0, -1)
    assert len(job_ids) == 1
    job = pickle.loads(await redis.get(b"arq:job:" + job_ids[0]))  # noqa: S301 - arq's own format
    assert (job["f"], job["a"]) == ("handle", (42, "sleep.updated", RECORD))


async def test_a_bad_signature_is_refused_and_queues_nothing(
    client: httpx.AsyncClient, redis: aioredis.Redis
) -> None:
    assert await _sent(client, "another secret") == 401
    assert await redis.zcard(QUEUE) == 0
