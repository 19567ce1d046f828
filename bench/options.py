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
    # (profile, users, simulated day in real seconds) of each economy day.
    economy: tuple[tuple[str, int, float], ...]
    backfill_users: int
    backfill_days: int
    worker_events: int  # bench 3: the backlog each worker drains, per round

    # The economy days keep every scaled window a whole number of seconds, and one full run
    # within about an hour on this shared 2-core machine: app opens and feed only, 1,000 users, a
    # day in 864 s (clock factor 100: liveness 9 s, thresholds 72 s and 36 s); heavy, 250 users,
    # 576 s (factor 150); overload, 1,500 users, 1,152 s (factor 75), its morning's events the
    # most the worker must carry (about 17 a second at this factor).
    ECONOMY_FULL = (
        ("app_opens", 1000, 864.0),
        ("overload", 1500, 1152.0),
        ("feed_only", 1000, 864.0),
        ("heavy", 250, 576.0),
    )
    ECONOMY_QUICK = (
        ("app_opens", 40, 192.0),
        ("overload", 60, 192.0),
        ("feed_only", 40, 192.0),
        ("heavy", 10, 192.0),
    )

    @classmethod
    def make(cls, quick: bool) -> Options:
        """The full run's settings, or the quick ones."""
        if quick:
            return cls(True, 4, 1, 1, 32, 4, cls.ECONOMY_QUICK, 40, 7, 200)
        return cls(False, 10, 3, 2, 32, 10, cls.ECONOMY_FULL, 200, 30, 1000)
