"""The simulated clock of an economy day: the product's windows and budgets scaled to it.

Every duration of a day is divided by one factor: the simulator's clock runs FACTOR times faster,
and the product's thresholds, liveness window, reconcile interval and inbox sweep are divided by
it (whole seconds: the factors are chosen to divide them). WHOOP's budget (100 calls a simulated
minute, 10,000 a simulated day) is enforced by the simulator in windows counted from the day's
start; whoop-sync is configured with the same 100 and 10,000 and with
WHOOPSYNC_BUDGET_TIME_SCALE = FACTOR, which divides its budget's windows (and each user's share's)
so that both count on the simulated clock. Scaling the limits instead (100 x FACTOR a real minute)
would not do: the simulator's X-RateLimit-Remaining counts down from 100 each simulated minute, and
whoop-sync weighs it against its configured per-minute limit. Its day window trails, WHOOP's is
fixed: the bench empties the product's day log when the simulated day starts (set-up excluded) and
again when the next one does. A user's share (12 calls a minute, 150 a day) is as it ships.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from bench.infra import REDIS_URL, pg_connect
from bench.scenarios.economy.plan import BUDGET_PER_DAY, BUDGET_PER_MINUTE, DAY, THRESHOLDS, Run

# The product's per-user share of the budget (SPEC 2), per simulated minute and day.
USER_REFRESHES_PER_MINUTE = 12
USER_REFRESHES_PER_DAY = 150


def scaled(factor: float) -> dict[str, int]:
    """The product's windows on the fast clock, in whole seconds (only the inbox sweep, a safety
    net for lost jobs, rounds: 60 s becomes 1 s)."""

    def scale(seconds: float) -> int:
        return max(1, round(seconds / factor))

    return {
        **{f"threshold_{k}_seconds": scale(v) for k, v in THRESHOLDS.items()},
        "webhook_liveness_seconds": scale(900),
        "reconcile_interval_seconds": scale(900),
        "inbox_sweep_seconds": scale(60),
    }


def budget_settings() -> dict[str, int]:
    """WHOOP's default budget and a user's share, as whoop-sync's settings (the windows they
    count in are scaled by WHOOPSYNC_BUDGET_TIME_SCALE)."""
    return {
        "whoop_rate_limit_per_minute": BUDGET_PER_MINUTE,
        "whoop_rate_limit_per_day": BUDGET_PER_DAY,
        "user_refreshes_per_minute": USER_REFRESHES_PER_MINUTE,
        "user_refreshes_per_day": USER_REFRESHES_PER_DAY,
    }


def audit_days(factor: float) -> float:
    """A week of audits on the fast clock."""
    return 7 / factor


def details(run: Run) -> dict[str, Any]:
    """One profile's day length, clock factor and scaled settings (real and simulated seconds)."""
    factor = run.factor
    windows = scaled(factor)
    return {
        "users": run.users,
        "simulated_day_real_seconds": run.day_seconds,
        "time_factor": factor,
        "scaled_settings": windows,
        "budget_settings": budget_settings(),
        "budget_windows_real_seconds": {"minute": 60 / factor, "day": DAY / factor},
        "scaled_settings_on_simulated_clock": {k: round(v * factor, 1) for k, v in windows.items()},
        "budget_on_simulated_clock": {"per_minute": BUDGET_PER_MINUTE, "per_day": BUDGET_PER_DAY},
    }


async def start_audit_rotation(dsn: str) -> None:
    """The audit rotation starts with the day. On the fast clock the set-up (many real minutes)
    lasts simulated days, which the rotation would owe at the day's first pass (an audit of up to
    every user at once); a real deployment connecting its users owes nothing for them."""
    conn = await pg_connect(dsn)
    try:
        await conn.execute("UPDATE whoop_channel_state SET audit_at = now(), audit_wide = false")
    finally:
        await conn.close()


async def open_day_budget() -> None:
    """A new simulated day: forget the calls whoop-sync's shared day window holds (its log in
    Redis), as WHOOP's day window opens afresh."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.delete("whoopsync:ratelimit:day")
    finally:
        await client.aclose()
