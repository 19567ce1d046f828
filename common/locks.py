"""Named mutual exclusion: across processes through Redis, within one process through asyncio."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Protocol

import structlog
from redis.exceptions import LockError, LockNotOwnedError, RedisError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.lock import Lock

__all__ = ["LocalLocks", "LockTimeout", "LockUnavailable", "Locks", "RedisLocks", "create_locks"]

log = structlog.get_logger(__name__)


class LockTimeout(Exception):
    """The lock was not acquired within its blocking timeout."""


class LockUnavailable(LockTimeout):
    """The lock could not even be asked for (Redis away): callers treat it as not acquired."""


class Locks(Protocol):
    """Named locks; `timeout` bounds how long a holder keeps one, `blocking_timeout` the wait.

    With `keep_alive` the holder's lease is extended while the block runs, so only a holder that
    died loses it after `timeout`; the block must bound its own duration. The block is given
    whether the lock was held by another when asked for (what that holder did may be new).
    """

    def lock(
        self,
        name: str,
        timeout: float = 30.0,
        blocking_timeout: float | None = None,
        *,
        keep_alive: bool = False,
    ) -> AbstractAsyncContextManager[bool]:
        """Hold the lock `name` for the duration of the block (given True when it had to wait
        for another holder); raise LockTimeout if not acquired."""
        ...


class LocalLocks:
    """asyncio locks by name, for a single process (embedded mode)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def lock(
        self,
        name: str,
        timeout: float = 30.0,  # noqa: ASYNC109 - the lock's lease, not this call's deadline
        blocking_timeout: float | None = None,
        *,
        keep_alive: bool = False,
    ) -> AsyncIterator[bool]:
        """Hold the lock `name` (`timeout` and `keep_alive` are moot in one process: a holder
        cannot die alone)."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        self._users[name] = self._users.get(name, 0) + 1
        waited = lock.locked()
        try:
            try:
                async with asyncio.timeout(_wait_limit(timeout, blocking_timeout)):
                    await lock.acquire()
            except TimeoutError:
                raise LockTimeout(f"lock {name} not acquired") from None
            try:
                yield waited
            finally:
                lock.release()
        finally:
            self._users[name] -= 1
            if not self._users[name]:  # nobody holds or waits: forget it, the dict stays small
                del self._users[name], self._locks[name]


class RedisLocks:
    """redis-py's Lock: one holder across every process; expires after `timeout` if it dies."""

    def __init__(self, redis: Redis, *, prefix: str = "whoopsync:lock", poll: float = 0.05) -> None:
        self.redis, self.prefix, self.poll = redis, prefix, poll

    @asynccontextmanager
    async def lock(
        self,
        name: str,
        timeout: float = 30.0,  # noqa: ASYNC109 - the lock's lease, not this call's deadline
        blocking_timeout: float | None = None,
        *,
        keep_alive: bool = False,
    ) -> AsyncIterator[bool]:
        """Hold the lock `name`; raise LockTimeout if another holder keeps it too long. With
        `keep_alive` the lease is renewed every third of `timeout` until the block ends.

        One SET when the lock is free; only a lock held by another is polled for."""
        lock = self.redis.lock(
            f"{self.prefix}:{name}",
            timeout=timeout,
            sleep=self.poll,
            blocking_timeout=_wait_limit(timeout, blocking_timeout),
            thread_local=False,
        )
        # The holder's token: random, and cheaper to make than redis-py's default (a uuid1).
        token = os.urandom(16).hex()
        try:
            acquired = await lock.acquire(blocking=False, token=token)
            waited = not acquired
            if waited:
                acquired = await lock.acquire(token=token)
        except (RedisError, OSError) as exc:
            raise LockUnavailable(f"lock {name} unavailable: {type(exc).__name__}") from exc
        if not acquired:
            raise LockTimeout(f"lock {name} not acquired")
        renewal = asyncio.create_task(_renew(lock, name, timeout)) if keep_alive else None
        try:
            yield waited
        finally:
            if renewal is not None:
                renewal.cancel()
                await asyncio.gather(renewal, return_exceptions=True)
            try:
                await lock.release()
            except (LockError, RedisError):
                # It expired (the holder overran `timeout`) or Redis is gone: nothing to release.
                log.warning("lock.release_failed", lock=name)


async def _renew(lock: Lock, name: str, lease: float) -> None:
    """Reset the lease to its full length every third of it, while the holder lives and owns it."""
    while True:
        await asyncio.sleep(lease / 3)
        try:
            await lock.reacquire()
        except LockNotOwnedError:
            log.warning("lock.lost", lock=name)
            return
        except RedisError:  # Redis away for a moment: the lease still runs, try again
            log.warning("lock.renew_failed", lock=name)


def _wait_limit(timeout: float, blocking_timeout: float | None) -> float:
    return timeout if blocking_timeout is None else blocking_timeout


def create_locks(redis: Redis | None) -> Locks:
    """Redis locks when Redis is configured, else in-process ones."""
    return LocalLocks() if redis is None else RedisLocks(redis)
