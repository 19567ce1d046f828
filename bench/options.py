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
    backfill_users: int
    backfill_days: int

    # The economy day: 1,000 users (the heavy profile 250) in 576 s, clock factor 150, which keeps
    # every scaled window a whole number of seconds (liveness 6 s, thresholds 48 s and 24 s). At
    # factor 300 the shared 2-core machine fell behind: the morning's events came faster than one
    # worker handles them, held users back from webhook confirmation, and reads piled up.

    @classmethod
    def make(cls, quick: bool) -> Options:
        """The full run's settings, or the quick ones."""
        if quick:
            return cls(True, 4, 1, 1, 32, 4, 40, 10, 96, 40, 7)
        return cls(False, 10, 3, 2, 32, 10, 1000, 250, 576, 200, 30)
