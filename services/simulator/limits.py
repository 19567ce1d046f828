"""WHOOP's app-wide rate limit (fixed minute and day windows on the simulated clock) and the
call counters the control API reports.

The windows are counted from the limiter's start or its last reset (the control API's
`/_sim/reset`), not from the epoch: a measurement that resets at the start of its simulated day
gets that day's whole budget, and the next day's opens 24 simulated hours later, wherever the
clock stood."""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from services.simulator.clock import Clock

MINUTE_MS = 60_000
DAY_MS = 86_400_000
# Calls kept in the log that measurements read back (a simulated day of 1,500 members is ~15,000).
CALL_LOG_SIZE = 200_000


@dataclass
class Verdict:
    """The outcome of one call against the budget, with the headers to send."""

    allowed: bool
    headers: dict[str, str]


class RateLimiter:
    """Per-minute and per-day budgets shared by every member of the app, as at WHOOP."""

    def __init__(self, clock: Clock, per_minute: int, per_day: int) -> None:
        self.clock, self.per_minute, self.per_day = clock, per_minute, per_day
        self.reset()

    def reset(self) -> None:
        """Forget every window; the next ones are counted from now."""
        self.origin_ms = self.clock.now_ms()
        self._minute, self._minute_used = -1, 0
        self._day, self._day_used = -1, 0

    def minute_of(self, now_ms: int) -> int:
        """The index of the minute window `now_ms` falls in."""
        return (now_ms - self.origin_ms) // MINUTE_MS

    def check(self) -> Verdict:
        """Spend one call if the budget allows it; headers tell what is left either way."""
        now = self.clock.now_ms()
        minute, day = self.minute_of(now), (now - self.origin_ms) // DAY_MS
        if minute != self._minute:
            self._minute, self._minute_used = minute, 0
        if day != self._day:
            self._day, self._day_used = day, 0
        allowed = self._minute_used < self.per_minute and self._day_used < self.per_day
        if allowed:
            self._minute_used += 1
            self._day_used += 1
        minute_left = self.per_minute - self._minute_used
        day_left = self.per_day - self._day_used
        window_end = self.origin_ms + (
            (day + 1) * DAY_MS if day_left <= 0 else (minute + 1) * MINUTE_MS
        )
        # Reset is reported in real seconds, so that a client on a fast clock waits the right time.
        reset = math.ceil(self.clock.real_seconds((window_end - now) / 1000))
        headers = {
            "X-RateLimit-Limit": f"{self.per_minute}, {self.per_minute};window=60, "
            f"{self.per_day};window=86400",
            "X-RateLimit-Remaining": str(max(0, min(minute_left, day_left))),
            "X-RateLimit-Reset": str(max(1, reset)),
        }
        return Verdict(allowed, headers)

    @property
    def minute_used(self) -> int:
        """Calls spent in the current minute window."""
        return self._minute_used

    @property
    def day_used(self) -> int:
        """Calls spent in the current day window."""
        return self._day_used


@dataclass
class Counters:
    """What the simulator was asked, for tests and benchmarks to read."""

    total: int = 0
    rate_limited: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_user: Counter[int] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    per_minute: Counter[int] = field(default_factory=Counter)
    # (real epoch seconds, endpoint, WHOOP user id or None, status) of each data API call.
    calls: deque[tuple[float, str, int | None, int]] = field(
        default_factory=lambda: deque(maxlen=CALL_LOG_SIZE)
    )

    def record(self, endpoint: str, minute: int | None) -> None:
        """Count one call as it arrives; `minute` is its budget window (None: not budgeted)."""
        self.total += 1
        self.by_endpoint[endpoint] += 1
        if minute is not None:
            self.per_minute[minute] += 1

    def answered(self, endpoint: str, user_id: int | None, status: int) -> None:
        """Note a data API call's answer in the call log."""
        self.calls.append((time.time(), endpoint, user_id, status))

    def as_json(self) -> dict[str, object]:
        """The control API's view."""
        return {
            "total": self.total,
            "rate_limited": self.rate_limited,
            "by_endpoint": dict(self.by_endpoint),
            "by_user": {str(k): v for k, v in self.by_user.items()},
            "by_status": {str(k): v for k, v in self.by_status.items()},
            "max_per_minute": max(self.per_minute.values(), default=0),
        }
