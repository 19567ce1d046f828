"""Admission of live event streams: at most SSE_MAX_PER_USER open at once per app user (SPEC §3.5).

Each open stream holds a slot. With Redis the slots of a user are one sorted set (member: the
stream, score: when its lease ends, on Redis' clock), so every api process counts the same streams;
a stream renews its lease while it is open and gives the slot back when it closes, and the slots
of a process that died without closing them lapse with their lease. Without Redis (`serve`) the
count is kept in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol, TypeVar

import structlog
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = structlog.get_logger(__name__)

T = TypeVar("T")
LEASE = 45.0
RENEW_EVERY = 15.0


class StreamSlots(Protocol):
    """The open streams of each user."""

    async def admit(self, user_id: uuid.UUID) -> str | None:
        """A slot for a new stream of the user, or None when all of theirs are taken."""
        ...

    async def renew(self, user_id: uuid.UUID, slot: str) -> None:
        """Keep the slot's lease (a stream still open)."""
        ...

    async def release(self, user_id: uuid.UUID, slot: str) -> None:
        """Give the slot back (the stream closed)."""
        ...


class LocalStreamSlots:
    """The streams of this process only (embedded mode)."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._open: dict[uuid.UUID, set[str]] = {}

    async def admit(self, user_id: uuid.UUID) -> str | None:
        """A slot for a new stream of the user, or None when all of theirs are taken."""
        held = self._open.setdefault(user_id, set())
        if len(held) >= self.per_user:
            return None
        slot = uuid.uuid4().hex
        held.add(slot)
        return slot

    async def renew(self, user_id: uuid.UUID, slot: str) -> None:
        """Nothing to renew: the slot lives as long as this process."""

    async def release(self, user_id: uuid.UUID, slot: str) -> None:
        """Give the slot back (the stream closed)."""
        held = self._open.get(user_id)
        if held is not None:
            held.discard(slot)
            if not held:
                del self._open[user_id]


# KEYS: the user's slots. ARGV: lease seconds, per-user limit, slot id. Returns 1 when admitted.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.17g', now))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
local lease = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], string.format('%.17g', now + lease), ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
return 1
"""

# KEYS: the user's slots. ARGV: lease seconds, slot id. Moves the lease on (brings a lapsed one back).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local lease = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], string.format('%.17g', now + lease), ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
return 1
"""


class RedisStreamSlots:
    """The streams of every api process, counted in Redis."""

    def __init__(
        self,
        redis: Redis,
        per_user: int,
        *,
        lease: float = LEASE,
        prefix: str = "whoopsync:streams",
    ) -> None:
        self.redis, self.per_user, self.lease, self.prefix = redis, per_user, lease, prefix
        self._admit = redis.register_script(_ADMIT)
        self._renew = redis.register_script(_RENEW)

    def _key(self, user_id: uuid.UUID) -> str:
        return f"{self.prefix}:{user_id}"

    async def admit(self, user_id: uuid.UUID) -> str | None:
        """A slot for a new stream of the user, or None when all of theirs are taken.

        Redis away: the stream is let in uncounted (its changes come from the database; only the
        count is lost for a moment), rather than refusing every stream.
        """
        slot = uuid.uuid4().hex
        try:
            admitted = await self._admit(
                keys=[self._key(user_id)], args=[self.lease, self.per_user, slot]
            )
        except (RedisError, OSError) as exc:
            log.warning("stream.slots_unavailable", error=type(exc).__name__)
            return slot
        return slot if int(admitted) == 1 else None

    async def renew(self, user_id: uuid.UUID, slot: str) -> None:
        """Keep the slot's lease (a stream still open)."""
        await self._renew(keys=[self._key(user_id)], args=[self.lease, slot])

    async def release(self, user_id: uuid.UUID, slot: str) -> None:
        """Give the slot back (the stream closed)."""
        with contextlib.suppress(RedisError, OSError):
            await self.redis.zrem(self._key(user_id), slot)


def create_stream_slots(per_user: int, redis: Redis | None) -> StreamSlots:
    """Slots in Redis when Redis is configured, else in this process."""
    if redis is None:
        return LocalStreamSlots(per_user)
    return RedisStreamSlots(redis, per_user)


async def _keep(slots: StreamSlots, user_id: uuid.UUID, slot: str, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await slots.renew(user_id, slot)
        except (RedisError, OSError) as exc:  # the next renewal tries again
            log.warning("stream.renew_failed", error=type(exc).__name__)


async def holding(
    slots: StreamSlots,
    user_id: uuid.UUID,
    slot: str,
    stream: AsyncIterator[T],
    *,
    renew_every: float = RENEW_EVERY,
) -> AsyncIterator[T]:
    """The stream's items, its slot kept while it is open and given back when it ends."""
    keeper = asyncio.create_task(_keep(slots, user_id, slot, renew_every))
    try:
        async for item in stream:
            yield item
    finally:
        keeper.cancel()
        # A stream ends by cancellation (the client went away), which the server repeats at
        # each await: the release runs in a task of its own that the cancellation cannot stop.
        await asyncio.shield(asyncio.ensure_future(slots.release(user_id, slot)))
