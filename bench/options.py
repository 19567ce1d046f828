"""How long and how hard each measurement runs (full run or --quick)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """Durations and sizes; --quick shrinks everything for development runs."""

    quick: bool
    measure_seconds: float
    warmup_seconds: float
    rounds: int
    connections: int
    freshness_seconds: float
    economy_users: int
    economy_heavy_users: int
    economy_day_seconds: float
    economy_heavy_day_seconds: float
    backfill_users: int
    backfill_days: int

    # The economy days keep every scaled window a whole number of seconds. App opens, 1,000 users:
    # a day in 1,728 s (clock factor 50: liveness 18 s, thresholds 144 s and 72 s). Its morning
    # brings about 4,000 events in a quarter of the day, 9 a second at this factor, which one
    # worker on this 2-core machine carries beside the reads; at factor 150 (28 a second) the
    # worker topped out near 16 a second and events waited minutes. Heavy, 250 users: 576 s
    # (factor 150), which the machine carries (events processed in under 1 s at p99).

    @classmethod
    def make(cls, quick: bool) -> Options:
        """The full run's settings, or the quick ones."""
        if quick:
            return cls(True, 4, 1, 1, 32, 4, 40, 10, 96, 96, 40, 7)
        return cls(False, 10, 3, 2, 32, 10, 1000, 250, 1728, 576, 200, 30)
