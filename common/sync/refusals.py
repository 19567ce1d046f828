"""A webhook refusal remembered beyond the process that answered it (SPEC §4.1).

A 503 from the receiver means WHOOP's delivery may be lost for good after its retries, so the
channel confirms nothing for an hour after one. The refusal usually happens because PostgreSQL is
away, so it cannot be written there at once: the receiver keeps it in memory and notes it in Redis
(the latest refusal wins), and it reaches the channel state with the receiver's next recorded event
or with the worker's next sweep (every few seconds), whichever comes first, even after the
receiver that refused was restarted. Only a refusal while both PostgreSQL and Redis were away,
followed by the receiver's death before either returned, is lost.
"""

from __future__ import annotations

from datetime import UTC, datetime

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from common.db.repositories import ChannelRepository
from common.db.repositories.ops import WEBHOOK_REFUSAL, OpsRepository

__all__ = ["REFUSED_KEY", "forget", "noted", "remember", "write"]

REFUSED_KEY = "whoopsync:webhook:refused_at"
# Keep the later of two refusals (microseconds since the epoch).
_LATER = """
local current = redis.call('GET', KEYS[1])
if not current or tonumber(current) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
"""
# Forget the note only if it is still the refusal that was written.
_FORGET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
"""


def _stamp(at: datetime) -> str:
    return str(int(at.timestamp() * 1_000_000))


async def remember(redis: Redis, at: datetime) -> None:
    """Note a refusal in Redis (the later one wins)."""
    await redis.eval(_LATER, 1, REFUSED_KEY, _stamp(at))  # type: ignore[misc]


async def noted(redis: Redis) -> datetime | None:
    """The refusal noted in Redis and not written to the channel state yet, if any."""
    value = await redis.get(REFUSED_KEY)
    if value is None:
        return None
    return datetime.fromtimestamp(int(value) / 1_000_000, UTC)


async def forget(redis: Redis, at: datetime) -> None:
    """Drop the note once `at` is written (a later refusal noted meanwhile stays)."""
    await redis.eval(_FORGET, 1, REFUSED_KEY, _stamp(at))  # type: ignore[misc]


async def write(session: AsyncSession, at: datetime) -> None:
    """Write a refusal to the channel state and the operators' incidents (the caller commits)."""
    await ChannelRepository(session).note_refusal(at)
    await OpsRepository(session).note(WEBHOOK_REFUSAL, at=at)
