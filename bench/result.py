"""What each measurement reports: rows of the table, details for the JSON, peak memory."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Row:
    """One figure: whoop-sync against its baseline, as a ratio, with the goal and whether it is met."""

    metric: str
    product: float
    baseline: float | None
    unit: str
    ratio: float | None
    goal: str
    met: bool | None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN becomes null)."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


@dataclass
class ScenarioResult:
    """The outcome of one numbered benchmark."""

    number: int
    title: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    memory_mb: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "number": self.number,
            "title": self.title,
            "rows": [row.as_dict() for row in self.rows],
            "details": self.details,
            "memory_mb": self.memory_mb,
            "notes": self.notes,
            "error": self.error,
            "seconds": round(self.seconds, 1),
        }
