"""Named locks: mutual exclusion in one process and across processes through Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from common.locks import LocalLocks, Locks, LockTimeout, RedisLocks


@pytest.fixture(params=["local", "redis"])
def locks(request: pytest.FixtureRequest, redis: aioredis.Redis) -> Locks:
    return LocalLocks() if request.param == "local" else RedisLocks(redis, poll=0.01)


async def test_one_holder_at_a_time(locks: Locks) -> None:
    inside, most = 0, 0

    async def worker() -> None:
        nonlocal inside, most
        async with locks.lock("token:u1", timeout=5):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)
            inside -= 1

    await asyncio.gather(*(worker() for _ in range(20)))
    assert most == 1


async def test_different_names_do_not_block_each_other(locks: Locks) -> None:
    async with locks.lock("a", timeout=5), locks.lock("b", timeout=5, blocking_timeout=0.1):
        pass


async def test_gives_up_after_the_blocking_timeout(locks: Locks) -> None:
    async with locks.lock("busy", timeout=5):
        with pytest.raises(LockTimeout):
            async with locks.lock("busy", timeout=5, blocking_timeout=0.05):
                pass
    async with locks.lock("busy", timeout=5, blocking_timeout=0.05):  # released afterwards
        pass


async def test_redis_lock_is_shared_between_clients(redis: aioredis.Redis, redis_url: str) -> None:
    other = aioredis.Redis.from_url(redis_url)
    try:
        async with RedisLocks(redis).lock("token:u2", timeout=5):
            with pytest.raises(LockTimeout):
                async with RedisLocks(other, poll=0.01).lock("token:u2", blocking_timeout=0.05):
                    pass
    finally:
        await other.aclose()


async def test_redis_lock_expires_when_its_holder_overruns(redis: aioredis.Redis) -> None:
    locks = RedisLocks(redis, poll=0.01)
    async with locks.lock("slow", timeout=0.1):
        await asyncio.sleep(0.15)  # the holder died or hung: the lease ran out
        async with locks.lock("slow", timeout=1, blocking_timeout=0.05):
            pass


async def test_kept_alive_lease_outlasts_its_timeout(locks: Locks) -> None:
    async with locks.lock("refresh", timeout=0.15, keep_alive=True):
        await asyncio.sleep(0.5)  # a slow holder, alive: three leases long
        with pytest.raises(LockTimeout):
            async with locks.lock("refresh", timeout=1, blocking_timeout=0.05):
                pass
    async with locks.lock("refresh", timeout=1, blocking_timeout=0.05):  # released at the end
        pass


async def test_the_block_is_told_whether_another_holder_came_first(locks: Locks) -> None:
    released = asyncio.Event()

    async def first() -> bool:
        async with locks.lock("told", timeout=5) as waited:
            await released.wait()
            return waited

    holder = asyncio.create_task(first())
    await asyncio.sleep(0.05)
    second = asyncio.create_task(_waited(locks, "told"))
    await asyncio.sleep(0.05)
    released.set()
    assert await holder is False
    assert await second is True
    assert await _waited(locks, "told") is False  # free again: taken at once


async def _waited(locks: Locks, name: str) -> bool:
    async with locks.lock(name, timeout=5, blocking_timeout=2) as waited:
        return waited
