"""The report: a table on stdout, bench/results/latest.json and a PNG chart."""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.result import Row, ScenarioResult

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _met(row: Row) -> str:
    return "-" if row.met is None else ("yes" if row.met else "NO")


def table(results: Sequence[ScenarioResult]) -> str:
    """The results as a fixed-width table, one line per figure, goals met or not."""
    header = ("#", "metric", "whoop-sync", "baseline", "ratio", "goal", "goal met")
    lines: list[tuple[str, ...]] = []
    for result in results:
        if result.error:
            lines.append(
                (
                    str(result.number),
                    f"{result.title}: NOT RUN ({result.error})",
                    "",
                    "",
                    "",
                    "",
                    "-",
                )
            )
        for row in result.rows:
            lines.append(
                (
                    str(result.number),
                    row.metric,
                    _fmt(row.product, row.unit),
                    _fmt(row.baseline, row.unit),
                    _fmt(row.ratio),
                    row.goal,
                    _met(row),
                )
            )
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    widths[1] = min(widths[1], 64)
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in lines]
    notes = [f"  [{r.number}] {note}" for r in results for note in r.notes]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


def machine() -> dict[str, Any]:
    """Where the run happened."""
    return {
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(results: Sequence[ScenarioResult], options: dict[str, Any], seconds: float) -> Path:
    """bench/results/latest.json."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "latest.json"
    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "options": options,
        "total_seconds": round(seconds, 1),
        "results": [r.as_dict() for r in results],
    }
    tmp = path.with_suffix(".json.tmp")
    text = json.dumps(_clean(document), indent=2, allow_nan=False, default=str)
    tmp.write_text(text + "\n")
    tmp.replace(path)
    return path
