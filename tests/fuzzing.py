"""What the fuzz tests share: hypothesis's settings for a fuzz target, and how many generated cases
they ran, printed at the end of the run (tests/conftest.py)."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, Phase, settings

CASES: Counter[str] = Counter()


def fuzz_settings(examples: int) -> settings:
    """hypothesis's settings for a fuzz target: `examples` generated cases after the explicit
    ones, the same on every run (derandomized, no example database), no deadline and no health
    check (each case is a request to a real server)."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def summary() -> list[str]:
    """One line per fuzz target, and the total."""
    if not CASES:
        return []
    lines = [f"{name}: {count} cases" for name, count in sorted(CASES.items())]
    return [*lines, f"fuzzing total: {sum(CASES.values())} cases"]
