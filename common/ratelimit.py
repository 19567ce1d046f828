"""One WHOOP call budget for the whole app.

WHOOP limits the *app* (every user together) to 100 calls a minute and 10,000 a day, and answers 429
past that. Every WHOOP call first takes a slot with `acquire(priority)`:

* Sliding windows, not fixed buckets: each granted call is a timestamp in a minute log and a day
  log, and a call is granted only while fewer than the limit lie within the trailing window. So no
  60-second span ever holds more than the per-minute budget, wherever it starts.
* Three priorities. INTERACTIVE (a user waiting on a read) may use the whole budget; BACKGROUND
  (backfill, reconcile) may not take the last `reserve` share (20 %) of either window and waits
  instead, so a user's read finds a slot when the budget runs short. ANNOUNCED (webhook jobs:
  the versions WHOOP announced, and a new night's cycle) keeps that reserve in the minute window
  but may use the whole day: once the day's forecast passes the budget, reads give way instead
  (`common.budget`), so that every announced version still gets its fetch.
* WHOOP's own headers slow us down before a 429: `observe(remaining, reset)` with 0 remaining blocks
  everyone until the reset, and a remaining count inside the interactive reserve blocks background
  work until then. After a 429, `block_for(reset)` blocks everyone.
* `acquire` waits (asyncio sleep) until a slot is free, but never longer than the priority's wait
  budget: past it, it raises `WhoopRateLimited(retry_after)` so that a read can answer from the cache
  and a job can be retried later. A budget that cannot be read (Redis away) raises the same.

`RedisRateLimiter` keeps the logs in Redis sorted sets and decides in one Lua script on Redis' own
clock (`TIME`), so every process shares one budget atomically and no host's clock can move the
windows for the others. `LocalRateLimiter` does the same in memory (embedded mode) on the monotonic
clock, which a wall-clock step cannot move either. Both take an injectable clock and sleep for
tests.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import structlog
from redis.exceptions import RedisError

from common.metrics import BUDGET_LIMIT, BUDGET_REMAINING
from common.whoop.errors import WhoopBudgetWait, WhoopRateLimited

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from common.config import Settings

__all__ = [
    "DEFAULT_MAX_WAIT",
    "LimiterUsage",
    "LocalRateLimiter",
    "Priority",
    "RateLimiter",
    "RedisRateLimiter",
    "create_rate_limiter",
]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
DAY = 86400.0
# How long a caller is told to wait when the shared budget (Redis) cannot be reached.
UNAVAILABLE_WAIT = 5.0

log = structlog.get_logger(__name__)


class Priority(IntEnum):
    """Who is waiting for a WHOOP call: a user (first), background work (yields), or a webhook
    job (yields within the minute, not within the day)."""

    INTERACTIVE = 0
    BACKGROUND = 1
    ANNOUNCED = 2


DEFAULT_MAX_WAIT: Mapping[Priority, float] = {
    Priority.INTERACTIVE: 5.0,
    Priority.BACKGROUND: 90.0,
    Priority.ANNOUNCED: 90.0,
}


def wait_budgets(given: Mapping[Priority, float]) -> dict[Priority, float]:
    """Every priority's wait budget; a webhook job waits as long as background work unless told."""
    budgets = dict(given)
    budgets.setdefault(Priority.ANNOUNCED, budgets.get(Priority.BACKGROUND, 90.0))
    return budgets


class LimiterUsage(NamedTuple):
    """Calls in the trailing minute and day, in the last hour, and in the day window's oldest hour
    (those leave it within the next hour); the hour is a 24th of the day window."""

    minute_used: int
    day_used: int
    last_hour: int
    leaving_hour: int
    minute_limit: int
    day_limit: int

    @property
    def day_forecast(self) -> int:
        """The calls the day window will hold an hour from now if the last hour's rate goes on."""
        return max(0, self.day_used - self.leaving_hour + self.last_hour)


class RateLimiter(Protocol):
    """The app-wide WHOOP budget."""

    async def acquire(self, priority: Priority, *, max_wait: float | None = None) -> None:
        """Wait for a slot; raise WhoopRateLimited if that would take longer than `max_wait`."""

    async def observe(self, remaining: int | None, reset_seconds: float | None) -> None:
        """Take WHOOP's X-RateLimit-Remaining / X-RateLimit-Reset into account."""

    async def block_for(self, seconds: float, *, background_only: bool = False) -> None:
        """Grant nothing (or nothing to background work) for `seconds`, e.g. after a 429."""

    async def remaining(self) -> tuple[int, int]:
        """Calls left in the trailing minute and day windows."""

    async def usage(self) -> LimiterUsage:
        """What was spent: the trailing minute and day, the last hour, the day's oldest hour."""


class _Decision(NamedTuple):
    """One grant decision: how long to wait (0 = granted), what is left, and at what time."""

    wait: float
    minute_left: int
    day_left: int
    at: float


class _BaseLimiter:
    """The waiting loop and header handling; subclasses decide grants atomically in `_try`."""

    def __init__(
        self,
        per_minute: int,
        per_day: int,
        *,
        reserve: float = 0.2,
        window: float = 60.0,
        day_window: float = DAY,
        max_wait: Mapping[Priority, float] = DEFAULT_MAX_WAIT,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.per_minute, self.per_day = per_minute, per_day
        BUDGET_LIMIT.labels("minute").set(per_minute)
        BUDGET_LIMIT.labels("day").set(per_day)
        self.window, self.day_window = window, day_window
        self.max_wait = wait_budgets(max_wait)
        self.clock, self.sleep = clock, sleep
        self._caps = {
            Priority.INTERACTIVE: (per_minute, per_day),
            Priority.BACKGROUND: (_share(per_minute, reserve), _share(per_day, reserve)),
            Priority.ANNOUNCED: (_share(per_minute, reserve), per_day),
        }

    async def _try(self, priority: Priority, now: float) -> _Decision:
        """Grant a slot now (wait 0) or say how long to wait, atomically."""
        raise NotImplementedError

    async def _block_until(self, until: float, background_only: bool) -> None:
        raise NotImplementedError

    async def acquire(self, priority: Priority, *, max_wait: float | None = None) -> None:
        """Wait for a slot; raise WhoopRateLimited if that would take longer than `max_wait`."""
        budget = self.max_wait[priority] if max_wait is None else max_wait
        began = self.clock()
        while True:
            now = self.clock()
            try:
                wait, minute_left, day_left, _ = await self._try(priority, now)
            except (RedisError, OSError) as exc:
                # The shared budget cannot be read: no call is made, as if the budget were spent
                # for a moment, so a read answers from the cache and a job waits (not a try).
                log.warning("ratelimit.unavailable", error=type(exc).__name__)
                raise WhoopRateLimited(UNAVAILABLE_WAIT) from exc
            if wait <= 0:
                BUDGET_REMAINING.labels("minute").set(minute_left)
                BUDGET_REMAINING.labels("day").set(day_left)
                return
            if now + wait - began > budget:
                raise WhoopBudgetWait(wait)
            await self.sleep(wait)

    async def observe(self, remaining: int | None, reset_seconds: float | None) -> None:
        """Block everyone at 0 remaining, background work inside the reserve, until the reset."""
        if remaining is None or reset_seconds is None or reset_seconds <= 0:
            return
        if remaining <= 0:
            await self.block_for(reset_seconds)
        elif remaining <= self.per_minute - self._caps[Priority.BACKGROUND][0]:
            await self.block_for(reset_seconds, background_only=True)

    async def block_for(self, seconds: float, *, background_only: bool = False) -> None:
        """Grant nothing (or nothing to background work) for `seconds`, e.g. after a 429."""
        try:
            await self._block_until(self.clock() + seconds, background_only)
        except (RedisError, OSError) as exc:  # the next acquire() meets the outage and waits
            log.warning("ratelimit.block_failed", error=type(exc).__name__)


def _share(limit: int, reserve: float) -> int:
    return max(1, math.floor(limit * (1 - reserve)))


class LocalRateLimiter(_BaseLimiter):
    """The budget of a single process (embedded mode), decided on the event loop."""

    def __init__(self, per_minute: int, per_day: int, **kwargs: Any) -> None:
        super().__init__(per_minute, per_day, **kwargs)
        self._minute: deque[float] = deque()
        self._day: deque[float] = deque()
        self._blocked = {Priority.INTERACTIVE: 0.0, Priority.BACKGROUND: 0.0}

    async def _try(self, priority: Priority, now: float) -> _Decision:
        _expire(self._minute, now - self.window)
        _expire(self._day, now - self.day_window)
        minute_cap, day_cap = self._caps[priority]
        # A webhook job is background work for the blocks (WHOOP's headers, a 429).
        blocked = Priority.INTERACTIVE if priority is Priority.INTERACTIVE else Priority.BACKGROUND
        waits = [self._blocked[blocked] - now]
        waits.append(_wait_in(self._minute, minute_cap, self.window, now))
        waits.append(_wait_in(self._day, day_cap, self.day_window, now))
        wait = max(waits)
        if wait <= 0:
            self._minute.append(now)
            self._day.append(now)
        return _Decision(
            wait, self.per_minute - len(self._minute), self.per_day - len(self._day), now
        )

    async def _block_until(self, until: float, background_only: bool) -> None:
        everyone = (Priority.INTERACTIVE, Priority.BACKGROUND)
        for priority in (Priority.BACKGROUND,) if background_only else everyone:
            self._blocked[priority] = max(self._blocked[priority], until)

    async def remaining(self) -> tuple[int, int]:
        """Calls left in the trailing minute and day windows."""
        now = self.clock()
        _expire(self._minute, now - self.window)
        _expire(self._day, now - self.day_window)
        return self.per_minute - len(self._minute), self.per_day - len(self._day)

    async def usage(self) -> LimiterUsage:
        """What was spent: the trailing minute and day, the last hour, the day's oldest hour."""
        now = self.clock()
        _expire(self._minute, now - self.window)
        _expire(self._day, now - self.day_window)
        hour = self.day_window / 24
        # Entries are in time order: (t - hour, t] and the day's oldest hour (t - day, t - day + hour].
        last_hour = len(self._day) - bisect.bisect_right(self._day, now - hour)
        leaving = bisect.bisect_right(self._day, now - self.day_window + hour)
        return LimiterUsage(
            len(self._minute), len(self._day), last_hour, leaving, self.per_minute, self.per_day
        )


def _expire(log: deque[float], before: float) -> None:
    while log and log[0] <= before:
        log.popleft()


def _wait_in(log: deque[float], cap: int, window: float, now: float) -> float:
    """0 if the log holds fewer than `cap` entries, else until enough of them leave the window."""
    if len(log) < cap:
        return 0.0
    return log[len(log) - cap] + window - now


# Time is Redis' own (`TIME`), read inside the script: one clock for every process, so a host
# whose clock jumps ahead can neither expire the others' entries early nor freeze the window for
# them. ARGV[1] is empty then; a test drives time by passing its clock there instead.
# `redis.replicate_commands()` lets a script write after TIME on Redis before 5.0 (from 7.0 on it
# is a no-op). Numbers go back to Redis through %.17g: Lua's default 14 digits would round today's
# epoch to 0.1 ms and move window boundaries.
_NOW = """
local function s(x) return string.format('%.17g', x) end
local function clock(given)
  if given ~= '' then return tonumber(given) end
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

# KEYS: minute log, day log, block (everyone), block (background)
# ARGV: now or '', minute window, day window, minute cap, day cap, member, background?, per_minute,
#       per_day
_ACQUIRE = (
    _NOW
    + """
local now = clock(ARGV[1])
local function wait_in(key, cap, window)
  local count = redis.call('ZCARD', key)
  if count < cap then return 0 end
  local entry = redis.call('ZRANGE', key, count - cap, count - cap, 'WITHSCORES')
  return tonumber(entry[2]) + window - now
end
local minute, day = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', s(now - minute))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', s(now - day))
local wait = tonumber(redis.call('GET', KEYS[3]) or '0') - now
if ARGV[7] == '1' then
  wait = math.max(wait, tonumber(redis.call('GET', KEYS[4]) or '0') - now)
end
wait = math.max(wait, wait_in(KEYS[1], tonumber(ARGV[4]), minute))
wait = math.max(wait, wait_in(KEYS[2], tonumber(ARGV[5]), day))
if wait <= 0 then
  local member = s(now) .. ':' .. ARGV[6]
  redis.call('ZADD', KEYS[1], s(now), member)
  redis.call('ZADD', KEYS[2], s(now), member)
  redis.call('PEXPIRE', KEYS[1], math.ceil(minute * 1000) + 1000)
  redis.call('PEXPIRE', KEYS[2], math.ceil(day * 1000) + 1000)
  wait = 0
end
return {s(wait), tonumber(ARGV[8]) - redis.call('ZCARD', KEYS[1]),
        tonumber(ARGV[9]) - redis.call('ZCARD', KEYS[2]), s(now)}
"""
)

# KEYS: block key; ARGV: seconds from now, now or ''. Only ever moves the block later.
_BLOCK = (
    _NOW
    + """
local upto = clock(ARGV[2]) + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if upto > current then
  redis.call('SET', KEYS[1], s(upto), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""
)

# KEYS: minute log, day log; ARGV: now or '', minute window, day window.
# The minute, the day, the day's last 24th, and its oldest 24th (which leaves it next).
_USAGE = (
    _NOW
    + """
local now = clock(ARGV[1])
local minute, day = tonumber(ARGV[2]), tonumber(ARGV[3])
local hour = day / 24
return {redis.call('ZCOUNT', KEYS[1], '(' .. s(now - minute), '+inf'),
        redis.call('ZCOUNT', KEYS[2], '(' .. s(now - day), '+inf'),
        redis.call('ZCOUNT', KEYS[2], '(' .. s(now - hour), '+inf'),
        redis.call('ZCOUNT', KEYS[2], '(' .. s(now - day), s(now - day + hour))}
"""
)

# KEYS: minute log, day log; ARGV: now or '', minute window, day window.
_REMAINING = (
    _NOW
    + """
local now = clock(ARGV[1])
return {redis.call('ZCOUNT', KEYS[1], '(' .. s(now - tonumber(ARGV[2])), '+inf'),
        redis.call('ZCOUNT', KEYS[2], '(' .. s(now - tonumber(ARGV[3])), '+inf')}
"""
)


class RedisRateLimiter(_BaseLimiter):
    """The budget shared by every process through Redis (one atomic Lua script per decision).

    Windows run on Redis' clock; `clock` is this process's, for its own waits only.
    `script_clock` (tests) replaces Redis' clock inside the scripts.
    """

    def __init__(
        self,
        redis: Redis,
        per_minute: int,
        per_day: int,
        *,
        prefix: str = "whoopsync:ratelimit",
        script_clock: Clock | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(per_minute, per_day, **kwargs)
        self.redis = redis
        self.script_clock = script_clock
        self._keys = [f"{prefix}:{name}" for name in ("minute", "day", "block", "block:background")]
        self._acquire = redis.register_script(_ACQUIRE)
        self._block = redis.register_script(_BLOCK)
        self._remaining = redis.register_script(_REMAINING)
        self._usage = redis.register_script(_USAGE)

    def _now(self) -> str:
        """The time the scripts use: '' for Redis' own, or the test's clock."""
        return "" if self.script_clock is None else repr(self.script_clock())

    async def _try(self, priority: Priority, now: float) -> _Decision:
        minute_cap, day_cap = self._caps[priority]
        background = "0" if priority is Priority.INTERACTIVE else "1"
        args: list[str | float | int] = [
            self._now(),
            self.window,
            self.day_window,
            minute_cap,
            day_cap,
        ]
        args += [uuid.uuid4().hex, background, self.per_minute, self.per_day]
        wait, minute_left, day_left, granted_at = await self._acquire(keys=self._keys, args=args)
        return _Decision(float(wait), int(minute_left), int(day_left), float(granted_at))

    async def _block_until(self, until: float, background_only: bool) -> None:
        keys = self._keys[3:4] if background_only else self._keys[2:4]
        seconds = max(0.0, until - self.clock())
        for key in keys:
            await self._block(keys=[key], args=[repr(seconds), self._now()])

    async def remaining(self) -> tuple[int, int]:
        """Calls left in the trailing minute and day windows."""
        args: list[str | float] = [self._now(), self.window, self.day_window]
        minute, day = await self._remaining(keys=self._keys[:2], args=args)
        return self.per_minute - int(minute), self.per_day - int(day)

    async def usage(self) -> LimiterUsage:
        """What was spent: the trailing minute and day, the last hour, the day's oldest hour."""
        args: list[str | float] = [self._now(), self.window, self.day_window]
        minute, day, last, leaving = await self._usage(keys=self._keys[:2], args=args)
        return LimiterUsage(
            int(minute), int(day), int(last), int(leaving), self.per_minute, self.per_day
        )


def create_rate_limiter(settings: Settings, redis: Redis | None, **kwargs: Any) -> RateLimiter:
    """The shared Redis budget when Redis is configured, else the in-process one."""
    per_minute, per_day = settings.whoop_rate_limit_per_minute, settings.whoop_rate_limit_per_day
    scale = settings.budget_time_scale
    kwargs = {"window": 60.0 / scale, "day_window": DAY / scale, **kwargs}
    if redis is None:
        return LocalRateLimiter(per_minute, per_day, **kwargs)
    return RedisRateLimiter(redis, per_minute, per_day, **kwargs)
