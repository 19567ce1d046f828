"""The day's forecast (SPEC §4): the calls the limiter's day window will hold an hour from now at
the last hour's rate, the same from the in-process and the Redis limiter, and the users the day's
budget carries at that rate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from common.budget import users_carried
from common.config import Settings
from common.ratelimit import (
    LimiterUsage,
    LocalRateLimiter,
    Priority,
    RateLimiter,
    RedisRateLimiter,
    create_rate_limiter,
)
from common.usershare import LocalUserShare, RedisUserShare, create_user_share
from common.whoop.errors import WhoopRateLimited
from tests.common.whoop.fakes import FakeClock

HOUR = 3600.0
Make = Callable[..., RateLimiter]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["local", "redis"])
def make(request: pytest.FixtureRequest, redis: aioredis.Redis, clock: FakeClock) -> Make:
    def build(per_minute: int = 100, per_day: int = 10_000, **kw: Any) -> RateLimiter:
        kw = {"clock": clock, "sleep": clock.sleep, **kw}
        if request.param == "local":
            return LocalRateLimiter(per_minute, per_day, **kw)
        return RedisRateLimiter(redis, per_minute, per_day, script_clock=clock, **kw)

    return build


async def _spend(
    limiter: RateLimiter, calls: int, priority: Priority = Priority.BACKGROUND
) -> None:
    for _ in range(calls):
        await limiter.acquire(priority, max_wait=0)


async def test_the_forecast_adds_the_last_hour_and_drops_the_hour_leaving(
    make: Make, clock: FakeClock
) -> None:
    limiter = make()
    await _spend(limiter, 5)  # these leave the day window in the hour after 23 h 30
    clock.now += 23.5 * HOUR
    await _spend(limiter, 3)
    usage = await limiter.usage()
    assert usage == LimiterUsage(3, 8, 3, 5, 100, 10_000)
    assert usage.day_forecast == 6


async def test_a_steady_rate_forecasts_the_day_it_spends(make: Make, clock: FakeClock) -> None:
    limiter = make()
    for _ in range(30):  # 4 calls every hour for 30 hours
        await _spend(limiter, 4)
        clock.now += HOUR
    clock.now -= HOUR / 2  # half an hour after the last calls
    usage = await limiter.usage()
    assert (usage.day_used, usage.last_hour, usage.leaving_hour) == (96, 4, 4)
    assert usage.day_forecast == 96


async def test_a_webhook_job_may_spend_the_whole_day_background_work_not(make: Make) -> None:
    limiter = make(per_minute=100, per_day=10)
    await _spend(limiter, 8)
    with pytest.raises(WhoopRateLimited):  # backfills and audits leave the day's last fifth
        await limiter.acquire(Priority.BACKGROUND, max_wait=0)
    await _spend(limiter, 2, Priority.ANNOUNCED)
    assert await limiter.remaining() == (90, 0)


async def test_a_webhook_job_keeps_the_minutes_reserve(make: Make) -> None:
    limiter = make(per_minute=10)
    await _spend(limiter, 8, Priority.ANNOUNCED)
    with pytest.raises(WhoopRateLimited):
        await limiter.acquire(Priority.ANNOUNCED, max_wait=0)
    await limiter.acquire(Priority.INTERACTIVE, max_wait=0)


def test_users_carried_at_the_forecasts_calls_per_user() -> None:
    assert users_carried(10_000, 12_000, 1_200) == 1_000
    assert users_carried(10_000, 8_000, 800) == 1_000
    assert users_carried(10_000, 0, 5) == 5
    assert users_carried(10_000, 500, 0) == 0


def test_a_time_scale_shrinks_the_budgets_windows(redis: aioredis.Redis) -> None:
    settings = Settings(budget_time_scale=50)
    for limiter in (create_rate_limiter(settings, None), create_rate_limiter(settings, redis)):
        assert isinstance(limiter, LocalRateLimiter | RedisRateLimiter)
        assert (limiter.window, limiter.day_window) == (1.2, 1728.0)
    for share in (create_user_share(settings, None), create_user_share(settings, redis)):
        assert isinstance(share, LocalUserShare | RedisUserShare)
        assert (share.window, share.day_window) == (1.2, 1728.0)
