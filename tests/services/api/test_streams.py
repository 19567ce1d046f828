"""Open event streams per user (SPEC §3.5): SSE_MAX_PER_USER across two api servers over one
Redis, then 429 `too_many_streams`; a closed stream gives its slot back, and the slots of a
process that died without closing them lapse with their lease."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from services.api.app import create_app
from services.api.streams import LocalStreamSlots, RedisStreamSlots, holding
from tests.services.api.conftest import auth, make_settings
from tests.services.api.test_events import api_server


@pytest.fixture
async def two_apis(pg_url: str, redis_url: str, redis: aioredis.Redis) -> AsyncIterator[list[str]]:
    settings = make_settings(pg_url, redis_url)
    async with api_server(create_app(settings)) as one, api_server(create_app(settings)) as two:
        yield [one, two]


async def test_the_sixth_stream_of_a_user_is_429(two_apis: list[str]) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))

        async def open_stream(base: str, who: uuid.UUID) -> httpx.Response:
            return await stack.enter_async_context(
                http.stream("GET", f"{base}/api/v1/smart/events", headers=auth(who))
            )

        opened = [await open_stream(two_apis[i % 2], user) for i in range(5)]
        assert [r.status_code for r in opened] == [200] * 5
        sixth = await http.get(f"{two_apis[1]}/api/v1/smart/events", headers=auth(user))
        assert sixth.status_code == 429
        assert sixth.json()["error"]["code"] == "too_many_streams"
        # Another user's streams are their own.
        assert (await open_stream(two_apis[0], other)).status_code == 200
        await opened[0].aclose()

        async def admitted_again() -> httpx.Response:
            while True:
                again = await open_stream(two_apis[1], user)
                if again.status_code == 200:
                    return again
                await again.aclose()
                await asyncio.sleep(0.05)

        async with asyncio.timeout(10):
            assert (await admitted_again()).status_code == 200


async def test_a_dead_process_slots_lapse_with_their_lease(redis: aioredis.Redis) -> None:
    user = uuid.uuid4()
    dead = RedisStreamSlots(redis, 2, lease=0.2)  # a process that stops renewing
    assert [await dead.admit(user) is not None for _ in range(3)] == [True, True, False]
    live = RedisStreamSlots(redis, 2, lease=30)

    async def lapsed() -> str:
        while (slot := await live.admit(user)) is None:  # noqa: ASYNC110 - a lease lapses in Redis
            await asyncio.sleep(0.05)
        return slot

    async with asyncio.timeout(10):
        assert await lapsed()


async def test_a_renewed_slot_is_kept_and_given_back_when_its_stream_ends(
    redis: aioredis.Redis,
) -> None:
    user = uuid.uuid4()
    slots = RedisStreamSlots(redis, 1, lease=0.3)
    slot = await slots.admit(user)
    assert slot is not None

    async def items() -> AsyncIterator[int]:
        for i in range(3):
            await asyncio.sleep(0.3)  # longer than the lease, renewed meanwhile
            yield i
            assert await slots.admit(user) is None

    assert [i async for i in holding(slots, user, slot, items(), renew_every=0.05)] == [0, 1, 2]
    assert await slots.admit(user) is not None


async def test_in_process_slots_count_the_streams_of_each_user() -> None:
    slots = LocalStreamSlots(2)
    user = uuid.uuid4()
    first, second = await slots.admit(user), await slots.admit(user)
    assert first is not None
    assert second is not None
    assert await slots.admit(user) is None
    assert await slots.admit(uuid.uuid4()) is not None
    await slots.release(user, first)
    assert await slots.admit(user) is not None
