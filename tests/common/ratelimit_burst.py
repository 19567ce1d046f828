"""Helper process for test_ratelimit: hammers a shared RedisRateLimiter and prints the grant times.

Run as `python -m tests.common.ratelimit_burst REDIS_URL CALLS PER_MINUTE WINDOW START_AT`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import redis.asyncio as aioredis

from common.ratelimit import Priority, RedisRateLimiter


class RecordingLimiter(RedisRateLimiter):
    """The real limiter, noting the clock value of every slot it granted."""

    granted: list[float]

    async def _try(self, priority: Priority, now: float) -> Any:
        decision = await super()._try(priority, now)
        if decision.wait <= 0:
            self.granted.append(decision.at)
        return decision


async def burst(
    redis_url: str, calls: int, per_minute: int, window: float, start_at: float
) -> None:
    redis = aioredis.Redis.from_url(redis_url)
    wait = {Priority.INTERACTIVE: 60.0, Priority.BACKGROUND: 60.0}
    limiter = RecordingLimiter(redis, per_minute, 1_000_000, window=window, max_wait=wait)
    limiter.granted = []
    await asyncio.sleep(max(0.0, start_at - time.time()))
    queue = list(range(calls))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            await limiter.acquire(Priority.INTERACTIVE if i % 3 == 0 else Priority.BACKGROUND)

    await asyncio.gather(*(worker() for _ in range(8)))
    await redis.aclose()
    print(json.dumps(limiter.granted))


if __name__ == "__main__":
    url, calls, per_minute, window, start_at = sys.argv[1:6]
    asyncio.run(burst(url, int(calls), int(per_minute), float(window), float(start_at)))
