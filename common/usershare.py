"""One app user's share of the WHOOP budget for reads and `force_refresh` (SPEC §3.1, §2).

Every WHOOP call a read makes for a user first takes one slot of that user's share with
`take(user_id)`: at most USER_REFRESHES_PER_MINUTE in any trailing minute and _PER_DAY in any
trailing day. Past it, `take` raises `WhoopShareSpent(retry_after)` before the call is made, and
the read answers from the cache (or 429 when nothing is cached). Webhook jobs, backfills and
audits take no slot: they are the app's work, not one user's.

`RedisUserShare` keeps each user's two logs in Redis sorted sets and decides in one Lua script on
Redis' own clock, so every api process counts the same calls; `LocalUserShare` does the same in
memory for `serve` without Redis.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Protocol

import structlog
from redis.exceptions import RedisError

from common.ratelimit import UNAVAILABLE_WAIT, Clock
from common.whoop.errors import WhoopRateLimited, WhoopShareSpent

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from common.config import Settings

__all__ = ["LocalUserShare", "RedisUserShare", "UserShare", "create_user_share"]

log = structlog.get_logger(__name__)

MINUTE = 60.0
DAY = 86400.0


class UserShare(Protocol):
    """Each app user's share of the WHOOP budget for reads."""

    async def take(self, user_id: uuid.UUID) -> None:
        """Take one call of the user's share; WhoopShareSpent when none is left."""


class LocalUserShare:
    """The shares of one process (embedded mode), on the monotonic clock."""

    def __init__(
        self,
        per_minute: int,
        per_day: int,
        *,
        window: float = MINUTE,
        day_window: float = DAY,
        clock: Clock = time.monotonic,
    ) -> None:
        self.per_minute, self.per_day = per_minute, per_day
        self.window, self.day_window, self.clock = window, day_window, clock
        self._logs: dict[uuid.UUID, tuple[deque[float], deque[float]]] = {}

    async def take(self, user_id: uuid.UUID) -> None:
        """Take one call of the user's share; WhoopShareSpent when none is left."""
        now = self.clock()
        minute, day = self._logs.setdefault(user_id, (deque(), deque()))
        while minute and minute[0] <= now - self.window:
            minute.popleft()
        while day and day[0] <= now - self.day_window:
            day.popleft()
        wait = 0.0
        if len(minute) >= self.per_minute:
            wait = max(wait, minute[len(minute) - self.per_minute] + self.window - now)
        if len(day) >= self.per_day:
            wait = max(wait, day[len(day) - self.per_day] + self.day_window - now)
        if wait > 0:
            raise WhoopShareSpent(wait)
        minute.append(now)
        day.append(now)


# KEYS: the user's minute log, day log. ARGV: now or '' (Redis' TIME), minute window, day window,
# per minute, per day, member. Returns the wait in seconds as a string ('0': taken).
_TAKE = """
local function s(x) return string.format('%.17g', x) end
local now
if ARGV[1] ~= '' then now = tonumber(ARGV[1]) else
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local minute, day = tonumber(ARGV[2]), tonumber(ARGV[3])
local function wait_in(key, cap, window)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', s(now - window))
  local count = redis.call('ZCARD', key)
  if count < cap then return 0 end
  local entry = redis.call('ZRANGE', key, count - cap, count - cap, 'WITHSCORES')
  return tonumber(entry[2]) + window - now
end
local wait = math.max(wait_in(KEYS[1], tonumber(ARGV[4]), minute),
                      wait_in(KEYS[2], tonumber(ARGV[5]), day))
if wait > 0 then return s(wait) end
local member = s(now) .. ':' .. ARGV[6]
redis.call('ZADD', KEYS[1], s(now), member)
redis.call('ZADD', KEYS[2], s(now), member)
redis.call('PEXPIRE', KEYS[1], math.ceil(minute * 1000) + 1000)
redis.call('PEXPIRE', KEYS[2], math.ceil(day * 1000) + 1000)
return '0'
"""


class RedisUserShare:
    """The shares counted in Redis, the same for every api process."""

    def __init__(
        self,
        redis: Redis,
        per_minute: int,
        per_day: int,
        *,
        prefix: str = "whoopsync:share",
        window: float = MINUTE,
        day_window: float = DAY,
        script_clock: Clock | None = None,
    ) -> None:
        self.per_minute, self.per_day = per_minute, per_day
        self.window, self.day_window = window, day_window
        self.prefix, self.script_clock = prefix, script_clock
        self._take = redis.register_script(_TAKE)

    async def take(self, user_id: uuid.UUID) -> None:
        """Take one call of the user's share; WhoopShareSpent when none is left."""
        keys = [f"{self.prefix}:{user_id}:minute", f"{self.prefix}:{user_id}:day"]
        now = "" if self.script_clock is None else repr(self.script_clock())
        args: list[str | float | int] = [now, self.window, self.day_window]
        args += [self.per_minute, self.per_day, uuid.uuid4().hex]
        try:
            wait = float(await self._take(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            # Nothing can be counted: no call is made, as when the app's budget cannot be read.
            log.warning("share.unavailable", error=type(exc).__name__)
            raise WhoopRateLimited(UNAVAILABLE_WAIT) from exc
        if wait > 0:
            raise WhoopShareSpent(wait)


def create_user_share(settings: Settings, redis: Redis | None) -> UserShare:
    """The shares in Redis when Redis is configured, else in this process."""
    per_minute, per_day = settings.user_refreshes_per_minute, settings.user_refreshes_per_day
    minute, day = MINUTE / settings.budget_time_scale, DAY / settings.budget_time_scale
    if redis is None:
        return LocalUserShare(per_minute, per_day, window=minute, day_window=day)
    return RedisUserShare(redis, per_minute, per_day, window=minute, day_window=day)
