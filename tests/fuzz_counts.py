"""How many generated cases the fuzz tests ran, printed at the end of the run (tests/conftest.py)."""

from __future__ import annotations

from collections import Counter

CASES: Counter[str] = Counter()


def summary() -> list[str]:
    """One line per fuzz target, and the total."""
    if not CASES:
        return []
    lines = [f"{name}: {count} cases" for name, count in sorted(CASES.items())]
    return [*lines, f"fuzzing total: {sum(CASES.values())} cases"]
