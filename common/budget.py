"""The day's WHOOP budget, spent where it counts (SPEC §4, §4.2): one forecast, one usage snapshot.

The forecast is the number of calls the limiter's day window will hold an hour from now if the
last hour's rate goes on: the calls of the trailing day, less those of its oldest hour (they leave
the window within the hour), plus those of the last hour. It reads the limiter's own logs, so every
process computes the same figure (Redis; in memory in `serve`). Once it passes the day's budget,
reads past their threshold answer `stale_cache` and audits wait, so that every version WHOOP
announces still gets its fetch.

`budget_usage` is the one place the operators' overview and the metrics read the budget from.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from common.db.repositories import ChannelRepository
from common.metrics import BUDGET_FORECAST, BUDGET_USERS_CARRIED
from common.ratelimit import RateLimiter

__all__ = ["DAY_BUDGET_REASON", "BudgetUsage", "budget_usage", "day_forecast", "users_carried"]

DAY_BUDGET_REASON = (
    "The day's WHOOP budget is reserved for the changes WHOOP announces; refreshes on read resume "
    "when the day's forecast falls below it"
)


@dataclass(frozen=True)
class BudgetUsage:
    """The WHOOP budget as spent now: this minute, this day, the day's forecast, the users."""

    minute_used: int
    minute_limit: int
    day_used: int
    day_limit: int
    day_forecast: int
    users_connected: int
    users_carried: int


def users_carried(day_limit: int, day_forecast: int, users_connected: int) -> int:
    """How many users the day's budget carries at the forecast's calls per connected user."""
    if users_connected <= 0:
        return 0
    if day_forecast <= 0:
        return users_connected  # nothing spent yet: at least everyone connected
    return day_limit * users_connected // day_forecast


async def day_forecast(limiter: RateLimiter) -> tuple[int, int]:
    """The day's forecast and the day's budget (and the forecast gauge set to it)."""
    usage = await limiter.usage()
    BUDGET_FORECAST.set(usage.day_forecast)
    return usage.day_forecast, usage.day_limit


async def budget_usage(limiter: RateLimiter, session: AsyncSession) -> BudgetUsage:
    """The budget's use now, its forecast and the users it carries (and their gauges set)."""
    usage = await limiter.usage()
    connected = await ChannelRepository(session).active_count()
    carried = users_carried(usage.day_limit, usage.day_forecast, connected)
    BUDGET_FORECAST.set(usage.day_forecast)
    BUDGET_USERS_CARRIED.set(carried)
    return BudgetUsage(
        minute_used=usage.minute_used,
        minute_limit=usage.minute_limit,
        day_used=usage.day_used,
        day_limit=usage.day_limit,
        day_forecast=usage.day_forecast,
        users_connected=connected,
        users_carried=carried,
    )
