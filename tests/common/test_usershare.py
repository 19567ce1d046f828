"""One app user's share of the WHOOP budget for reads (SPEC §3.1): sliding minute and day windows
per user, in Redis (every api process) or in process (`serve`), each user on their own."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from common.config import Settings
from common.usershare import LocalUserShare, RedisUserShare, UserShare, create_user_share
from common.whoop.errors import WhoopShareSpent
from tests.common.whoop.fakes import FakeClock

Make = Callable[[int, int], UserShare]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["local", "redis"])
def make(request: pytest.FixtureRequest, redis: aioredis.Redis, clock: FakeClock) -> Make:
    def build(per_minute: int, per_day: int) -> UserShare:
        if request.param == "local":
            return LocalUserShare(per_minute, per_day, clock=clock)
        return RedisUserShare(redis, per_minute, per_day, script_clock=clock)

    return build


async def test_a_user_spends_at_most_the_minutes_share(make: Make, clock: FakeClock) -> None:
    share, user = make(3, 100), uuid.uuid4()
    for _ in range(3):
        await share.take(user)
    with pytest.raises(WhoopShareSpent) as caught:
        await share.take(user)
    assert caught.value.reset_after == pytest.approx(60.0)
    assert "refresh limit" in caught.value.reason
    await share.take(uuid.uuid4())  # another user's share is their own
    clock.now += 60.0
    await share.take(user)


async def test_a_user_spends_at_most_the_days_share(make: Make, clock: FakeClock) -> None:
    share, user = make(100, 4), uuid.uuid4()
    for _ in range(4):
        await share.take(user)
        clock.now += 3600.0
    with pytest.raises(WhoopShareSpent) as caught:
        await share.take(user)
    assert caught.value.reset_after == pytest.approx(86_400.0 - 4 * 3600.0)


def test_the_share_is_in_redis_only_when_redis_is_configured(redis: aioredis.Redis) -> None:
    settings = Settings(user_refreshes_per_minute=12, user_refreshes_per_day=150)
    assert isinstance(create_user_share(settings, None), LocalUserShare)
    shared = create_user_share(settings, redis)
    assert isinstance(shared, RedisUserShare)
    assert (shared.per_minute, shared.per_day) == (12, 150)
