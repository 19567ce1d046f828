"""The economy day's schedule: profiles, WHOOP's changes, the reads, and the designs computed from
them (the guide's, hourly polling, the ideal)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

DAY = 86400.0
HOUR = 3600.0
THRESHOLDS = {"recovery": 7200.0, "sleep": 7200.0, "cycle": 7200.0, "workout": 3600.0}
WAKING = (7 / 24, 23 / 24)
# Hourly polling of 30 days: ~30 cycles, sleeps and recoveries, ~36 workouts: two pages each.
POLL_PAGES_PER_HOUR = sum(math.ceil(n / 25) for n in (30, 31, 30, 36))
# WHOOP's default budget for an app, enforced by the simulator on its clock and configured in
# whoop-sync.
BUDGET_PER_MINUTE = 100
BUDGET_PER_DAY = 10_000
# Each profile's read schedule and whether the next day's first hour is run too.
READS = {"app_opens": "app_opens", "heavy": "heavy", "feed_only": None, "overload": "app_opens"}
NEXT_HOUR = {"overload"}


@dataclass(frozen=True)
class Run:
    """One live day of whoop-sync: its freshness mode, profile, size and length."""

    freshness: str
    profile: str
    users: int
    day_seconds: float

    @property
    def factor(self) -> float:
        """How many times faster than real time the simulated clock runs."""
        return DAY / self.day_seconds

    @property
    def next_hour(self) -> bool:
        """Whether the next day's first simulated hour is run (events left over are processed)."""
        return self.profile in NEXT_HOUR


def changes_plan(whoop_ids: list[int], rng: random.Random) -> list[tuple[float, int, str]]:
    """(day fraction, member, action): a night's sleep, its scoring, ~1.2 workouts and theirs."""
    plan = []
    for member in whoop_ids:
        wake = rng.uniform(0.2, 0.4)
        plan.append((wake, member, "new_sleep"))
        plan.append((wake + rng.uniform(5, 30) / 1440, member, "rescore"))
        plan.append((wake + rng.uniform(30, 90) / 1440, member, "rescore"))
        for _ in range(1 + (rng.random() < 0.2)):
            at = rng.uniform(0.3, 0.92)
            plan.append((at, member, "workout"))
            # WHOOP scores every workout: one created PENDING_SCORE (two in five) is scored
            # 10-40 minutes later; after one created scored the rescore is a no-op.
            plan.append((at + rng.uniform(10, 40) / 1440, member, "rescore"))
    return sorted(plan)


def reads_plan(
    profile: str, whoop_ids: list[int], rng: random.Random
) -> list[tuple[float, int, str]]:
    """(day fraction, member, type), in waking hours; none for a profile without reads."""
    reads: list[tuple[float, int, str]] = []
    kind = READS[profile]
    for member in whoop_ids:
        if kind == "app_opens":
            for _ in range(6):
                at = rng.uniform(*WAKING)
                reads += [(at, member, k) for k in ("recovery", "sleep", "cycle")]
            reads += [(rng.uniform(*WAKING), member, "workout") for _ in range(2)]
        elif kind == "heavy":
            reads += [(rng.uniform(*WAKING), member, k) for k in THRESHOLDS for _ in range(20)]
    return sorted(reads)


def guide_calls(reads: list[tuple[float, int, str]]) -> int:
    """The guide's design: a read past its threshold since the last fetch fetches (one call)."""
    last: dict[tuple[int, str], float] = {}
    calls = 0
    for fraction, member, kind in reads:
        at = fraction * DAY
        if at - last.get((member, kind), 0.0) >= THRESHOLDS[kind]:
            calls += 1
            last[(member, kind)] = at
    return calls


def ideal_calls(announced: int, reads: list[tuple[float, int, str]]) -> int:
    """One fetch per announced version, one cycle fetch per cycle read past its threshold."""
    return announced + guide_calls([r for r in reads if r[2] == "cycle"])


def polling_calls(users: int) -> int:
    """Hourly polling of every user's 30 days, every type."""
    return users * 24 * POLL_PAGES_PER_HOUR
