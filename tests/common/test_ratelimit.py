"""The app-wide WHOOP budget: sliding windows, priorities, WHOOP's headers, many processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from common.config import Settings
from common.ratelimit import (
    LocalRateLimiter,
    Priority,
    RateLimiter,
    RedisRateLimiter,
    create_rate_limiter,
)
from common.whoop.errors import WhoopRateLimited
from tests.common.whoop.fakes import FakeClock

ROOT = Path(__file__).resolve().parents[2]
Make = Callable[..., RateLimiter]
LONG = {Priority.INTERACTIVE: 10_000.0, Priority.BACKGROUND: 10_000.0}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["local", "redis"])
def make(request: pytest.FixtureRequest, redis: aioredis.Redis, clock: FakeClock) -> Make:
    def build(per_minute: int, per_day: int = 10_000, **kw: Any) -> RateLimiter:
        kw = {"clock": clock, "sleep": clock.sleep, "max_wait": LONG, **kw}
        if request.param == "local":
            return LocalRateLimiter(per_minute, per_day, **kw)
        return RedisRateLimiter(redis, per_minute, per_day, script_clock=clock, **kw)

    return build


def most_in_any_window(times: Sequence[float], window: float) -> int:
    """The largest number of grants inside any half-open window (t - window, t]."""
    ordered, most, left = sorted(times), 0, 0
    for right, t in enumerate(ordered):
        while ordered[left] <= t - window:
            left += 1
        most = max(most, right - left + 1)
    return most


async def test_no_minute_window_holds_more_than_the_budget(make: Make, clock: FakeClock) -> None:
    limiter = make(10)
    granted = []
    for _ in range(45):
        await limiter.acquire(Priority.INTERACTIVE)
        granted.append(clock.now)
    assert most_in_any_window(granted, 60.0) == 10
    assert granted[-1] - granted[0] == pytest.approx(4 * 60.0)  # waited, never refused


async def test_background_leaves_the_last_fifth_to_interactive(make: Make) -> None:
    limiter = make(10)
    for _ in range(8):
        await limiter.acquire(Priority.BACKGROUND, max_wait=0)
    with pytest.raises(WhoopRateLimited):
        await limiter.acquire(Priority.BACKGROUND, max_wait=0)
    await limiter.acquire(Priority.INTERACTIVE, max_wait=0)
    await limiter.acquire(Priority.INTERACTIVE, max_wait=0)
    with pytest.raises(WhoopRateLimited) as caught:
        await limiter.acquire(Priority.INTERACTIVE, max_wait=5)
    assert caught.value.reset_after == pytest.approx(60.0)
    assert await limiter.remaining() == (0, 9_990)


async def test_day_budget_is_enforced(make: Make) -> None:
    limiter = make(100, per_day=5)
    for _ in range(5):
        await limiter.acquire(Priority.INTERACTIVE, max_wait=0)
    with pytest.raises(WhoopRateLimited) as caught:
        await limiter.acquire(Priority.INTERACTIVE, max_wait=3600)
    assert caught.value.reset_after == pytest.approx(86_400.0)


async def test_interactive_wait_is_bounded_by_default(make: Make, clock: FakeClock) -> None:
    limiter = make(1, max_wait={Priority.INTERACTIVE: 5.0, Priority.BACKGROUND: 90.0})
    await limiter.acquire(Priority.INTERACTIVE)
    started = clock.now
    with pytest.raises(WhoopRateLimited):
        await limiter.acquire(Priority.INTERACTIVE)
    assert clock.now == started  # gave up at once rather than sleep past its budget


async def test_remaining_zero_blocks_everyone_until_the_reset(make: Make, clock: FakeClock) -> None:
    limiter = make(100)
    await limiter.observe(0, 12.0)
    started = clock.now
    await limiter.acquire(Priority.INTERACTIVE)
    assert clock.now - started == pytest.approx(12.0)


async def test_low_remaining_holds_back_background_only(make: Make, clock: FakeClock) -> None:
    limiter = make(100)
    await limiter.observe(10, 20.0)  # inside the 20 % reserve
    started = clock.now
    await limiter.acquire(Priority.INTERACTIVE)
    assert clock.now == started
    await limiter.acquire(Priority.BACKGROUND)
    assert clock.now - started == pytest.approx(20.0)


async def test_headers_with_plenty_left_change_nothing(make: Make, clock: FakeClock) -> None:
    limiter = make(100)
    await limiter.observe(80, 30.0)
    await limiter.observe(None, None)
    started = clock.now
    await limiter.acquire(Priority.BACKGROUND)
    assert clock.now == started


async def test_block_for_holds_every_priority(make: Make, clock: FakeClock) -> None:
    limiter = make(100)
    await limiter.block_for(4.0)
    await limiter.block_for(1.0)  # a shorter block never shortens a longer one
    started = clock.now
    await limiter.acquire(Priority.INTERACTIVE)
    assert clock.now - started == pytest.approx(4.0)


async def test_redis_budget_is_shared_between_limiters(
    redis: aioredis.Redis, clock: FakeClock
) -> None:
    first = RedisRateLimiter(redis, 3, 100, clock=clock, sleep=clock.sleep, script_clock=clock)
    second = RedisRateLimiter(redis, 3, 100, clock=clock, sleep=clock.sleep, script_clock=clock)
    for limiter in (first, second, first):
        await limiter.acquire(Priority.INTERACTIVE, max_wait=0)
    with pytest.raises(WhoopRateLimited):
        await second.acquire(Priority.INTERACTIVE, max_wait=0)


async def test_a_host_clock_ahead_moves_no_window(redis: aioredis.Redis) -> None:
    honest = RedisRateLimiter(redis, 3, 100)
    ahead = RedisRateLimiter(redis, 3, 100, clock=lambda: time.time() + 3600)  # an hour fast
    for _ in range(3):
        await honest.acquire(Priority.INTERACTIVE, max_wait=0)

    with pytest.raises(WhoopRateLimited):  # the minute is full, whatever this host believes
        await ahead.acquire(Priority.INTERACTIVE, max_wait=0)
    await ahead.block_for(2.0)

    assert await ahead.remaining() == await honest.remaining() == (0, 97)
    blocked_until = float(await redis.get("whoopsync:ratelimit:block") or 0)
    assert blocked_until < time.time() + 60  # two seconds on Redis' clock, not an hour ahead


def test_factory_picks_redis_only_when_configured(redis: aioredis.Redis) -> None:
    settings = Settings(whoop_rate_limit_per_minute=7, whoop_rate_limit_per_day=70)
    assert isinstance(create_rate_limiter(settings, None), LocalRateLimiter)
    shared = create_rate_limiter(settings, redis)
    assert isinstance(shared, RedisRateLimiter)
    assert (shared.per_minute, shared.per_day) == (7, 70)


async def test_burst_from_three_processes_never_exceeds_the_budget(
    redis: aioredis.Redis, redis_url: str
) -> None:
    calls, per_window, window = 500, 20, 0.1  # a 100 ms "minute" keeps the test short
    start_at = time.time() + 1.5
    args = [redis_url, "0", str(per_window), str(window), str(start_at)]
    shares = [167, 167, 166]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.common.ratelimit_burst",
            args[0],
            str(n),
            *args[2:],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        for n in shares
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), 30)
    assert [p.returncode for p in processes] == [0, 0, 0]
    granted = [t for out, _ in outputs for t in json.loads(out)]
    assert len(granted) == calls
    assert most_in_any_window(granted, window) <= per_window
    assert max(granted) - min(granted) >= (calls / per_window - 1) * window
