"""The economy's figures: goal rows for the bench's table, the per-design table (JSON, README,
chart) and the per-day accounts, and whether a day measured the design or a machine behind."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from bench.result import Row
from bench.scenarios.common import at_most, info
from bench.scenarios.economy.day import DayOutcome
from bench.scenarios.economy.plan import BUDGET_PER_DAY, guide_calls, ideal_calls, polling_calls
from bench.scenarios.economy.where import KINDS, nearest_rank

# A worker on its own processes an event in about 0.1 s; events waiting longer than this on the
# fast clock, while the budget was not short, mean the shared machine fell behind the day.
BEHIND_SECONDS = 5.0
# The load generator sending reads this late against its schedule fell behind too.
SLIP_SECONDS = 5.0
LABELS = {"app_opens": "app opens", "heavy": "heavy", "feed_only": "feed only"}
LABELS["overload"] = "overload"


def budget_short(day: DayOutcome) -> bool:
    """Whether WHOOP's budget, not the machine, can explain work waiting: a 429, or the day's
    whole budget spent (webhook jobs may spend all of it; nothing short of it holds them back)."""
    return day.rate_limited > 0 or day.calls >= BUDGET_PER_DAY


def behind(day: DayOutcome) -> str | None:
    """Why a day's count is no measurement of the design (the machine fell behind), or None."""
    faults = []
    unanswered = day.statuses.get("0", 0)
    if unanswered:
        faults.append(f"{unanswered} of {len(day.reads)} reads unanswered")
    if day.slip_s > SLIP_SECONDS:
        faults.append(f"reads sent up to {day.slip_s:g} s late")
    if not budget_short(day):
        if day.unresolved:
            faults.append(f"{day.unresolved} sampled changes never seen in the cache")
        waited = day.why.get("event_processing_s", {}).get("p99", 0.0)
        if waited > BEHIND_SECONDS:
            faults.append(f"events waited {waited:g} s (p99) for the worker")
    return "; ".join(faults) or None


def five_xx(day: DayOutcome) -> dict[str, int]:
    """5xx answers: the read API's to reads, the webhook receiver's to WHOOP's deliveries."""
    reads = sum(n for status, n in day.statuses.items() if status.startswith("5"))
    hooks = sum(n for status, n in day.webhook_answers.items() if status.startswith("5"))
    return {"reads": reads, "webhooks": hooks}


def cycle_calls(day: DayOutcome) -> int:
    """Calls for cycles: pages and cycles by id (not a cycle's sleep or recovery)."""
    return sum(
        n
        for endpoint, n in day.by_endpoint.items()
        if endpoint.startswith("GET /v2/cycle") and not endpoint.endswith(("/sleep", "/recovery"))
    )


def profile_rows(day: DayOutcome) -> list[Row]:
    """The goal rows of one profile's day (SPEC's issue 21 goals), then its informative rows."""
    users, profile = day.run.users, day.run.profile
    label = f"economy [{LABELS.get(profile, profile)}, {users} users]"
    ideal, guide = ideal_calls(day.announced, day.reads), guide_calls(day.reads)
    p99 = nearest_rank(day.lags, 0.99)
    stale = day.sources.get("stale_cache", 0)
    rows: list[Row] = []
    if profile == "app_opens":
        rows += [
            at_most(f"{label}: calls vs ideal", day.calls, ideal, "calls", 1.1),
            at_most(f"{label}: calls vs guide", day.calls, guide, "calls", 0.8),
            at_most(f"{label}: stale_cache reads", stale, 1, "reads", 0.0),
            at_most(f"{label}: 429s from WHOOP", day.rate_limited, 1, "429s", 0.0),
            at_most(f"{label}: freshness p99", p99, 60.0, "s", 1.0),
        ]
    elif profile == "heavy":
        rows.append(at_most(f"{label}: calls vs ideal", day.calls, ideal, "calls", 1.2))
    elif profile == "feed_only":
        per_user = round(cycle_calls(day) / users, 2)
        late = max(day.cycle_feed_s, default=math.nan)
        rows += [
            at_most(f"{label}: cycle calls per user-day", per_user, 1.2, "calls", 1.0),
            at_most(f"{label}: closed cycle in the feed, max", late, 60.0, "s", 1.0),
            at_most(f"{label}: closed cycles never in the feed", day.cycle_feed_missing, 1,
                    "cycles", 0.0),
        ]  # fmt: skip
    else:
        unanswered = day.statuses.get("0", 0)
        rows += [
            at_most(f"{label}: 429s from WHOOP", day.rate_limited, 1, "429s", 0.0),
            at_most(f"{label}: failed events", day.events.get("failed", 0), 1, "events", 0.0),
            at_most(f"{label}: 5xx answers", sum(five_xx(day).values()), 1, "answers", 0.0),
            at_most(f"{label}: reads unanswered", unanswered, 1, "reads", 0.0),
            at_most(f"{label}: freshness p99 (all day)", p99, 60.0, "s", 1.0),
        ]
    per_user = day.calls / users
    rows += [
        info(f"{label}: calls per user-day", round(per_user, 2), None, "calls"),
        info(f"{label}: users 10,000 calls a day carry", _carry(per_user), None, "users"),
        info(f"{label}: events pending at the day's end", day.events.get("pending", 0), None,
             "events"),
    ]  # fmt: skip
    fault = behind(day)
    if fault is not None:  # the machine fell behind the day: no verdict on the design
        rows = [dataclasses.replace(r, met=None, note=f"NOT VALID: {fault}") for r in rows]
    return rows


def _carry(per_user: float) -> float:
    return math.floor(BUDGET_PER_DAY / per_user) if per_user else math.inf


def _ratio(calls: int, reference: int) -> float | None:
    return round(calls / reference, 2) if reference else None


def design_table(days: list[DayOutcome]) -> list[dict[str, Any]]:
    """Calls per user-day by design and profile, for the JSON, the README and the chart."""
    rows = []
    for day in days:
        users = day.run.users
        ideal, guide = ideal_calls(day.announced, day.reads), guide_calls(day.reads)
        designs: dict[str, tuple[int, str, DayOutcome | None]] = {
            f"whoop-sync {day.run.freshness}": (day.calls, "measured", day),
            "guide (fetch on read past threshold)": (guide, "computed", None),
            "hourly polling, 30 days": (polling_calls(users), "computed", None),
            "ideal": (ideal, "computed", None),
        }
        for design, (calls, how, measured) in designs.items():
            lags = measured.lags if measured else []
            rows.append(
                {
                    "profile": day.run.profile, "users": users, "design": design, "how": how,
                    "calls": calls, "calls_per_user_day": round(calls / users, 2),
                    "ratio_to_ideal": _ratio(calls, ideal), "ratio_to_guide": _ratio(calls, guide),
                    "users_10k_calls_carry": _carry(calls / users),
                    "freshness_p50_s": round(nearest_rank(lags, 0.5), 2) if measured else None,
                    "freshness_p99_s": round(nearest_rank(lags, 0.99), 2) if measured else None,
                    "stale_cache_reads": day.sources.get("stale_cache", 0) if measured else None,
                }
            )  # fmt: skip
    return rows


def day_accounts(day: DayOutcome) -> dict[str, Any]:
    """One day's accounts besides the calls: WHOOP's 429s, stale_cache reads by reason, events
    left at the day's end, 5xx answers, the calls by kind, the feed's closed cycles."""
    feed = day.cycle_feed_s
    return {
        "profile": day.run.profile,
        "users": day.run.users,
        "rate_limited_429": day.rate_limited,
        "stale_cache_by_reason": day.stale_reasons,
        "events_at_day_end": day.events,
        "five_xx": five_xx(day),
        "calls_by_kind": day.kinds.get("kinds", {k: 0 for k in KINDS}),
        "other_calls": day.kinds.get("other", {}),
        "cycle_calls_per_user_day": round(cycle_calls(day) / day.run.users, 2),
        "closed_cycle_to_feed_s": {
            "cycles": len(feed) + day.cycle_feed_missing,
            "missing": day.cycle_feed_missing,
            "p50": round(nearest_rank(feed, 0.5), 2),
            "p99": round(nearest_rank(feed, 0.99), 2),
            "max": round(max(feed, default=math.nan), 2),
        },
        "next_hour": day.next_hour,
        "not_valid": behind(day),
    }
