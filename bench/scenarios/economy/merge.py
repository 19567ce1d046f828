"""Join the economy results of runs that each measured some profiles into one economy.json and
economy.png (a full run split in two on a busy machine):

    python -m bench.scenarios.economy.merge FIRST.json SECOND.json [...]

Days, goal rows, tables and clocks are taken from each file in turn (a later file's profile
replaces an earlier one's); each day is judged again by the current rule of what makes a day NOT
VALID (`table.behind`); the README's tables and the chart are made again from the whole.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.scenarios.economy.chart import write_chart
from bench.scenarios.economy.plan import BUDGET_PER_DAY
from bench.scenarios.economy.readme import LABELS, markdown
from bench.scenarios.economy.table import BEHIND_SECONDS, SLIP_SECONDS

RESULTS = Path(__file__).resolve().parents[2] / "results"


def fault(day: dict[str, Any], rate_limited: int) -> str | None:
    """`table.behind` over a day as economy.json holds it."""
    faults = []
    unanswered = day["read_statuses"].get("0", 0)
    if unanswered:
        faults.append(f"{unanswered} of {day['reads']} reads unanswered")
    if day["reads_max_slip_s"] > SLIP_SECONDS:
        faults.append(f"reads sent up to {day['reads_max_slip_s']:g} s late")
    if rate_limited == 0 and day["calls"] < BUDGET_PER_DAY:
        if day["freshness_unresolved"]:
            faults.append(f"{day['freshness_unresolved']} sampled changes never seen in the cache")
        waited = day["where_calls_went"]["event_processing_s"]["p99"]
        if waited > BEHIND_SECONDS:
            faults.append(f"events waited {waited:g} s (p99) for the worker")
    return "; ".join(faults) or None


def judged(part: dict[str, Any]) -> dict[str, Any]:
    """A result whose days are judged again (goal rows of a day NOT VALID have no verdict)."""
    details = part["details"]
    for account in details["accounts"]:
        day = details["days"][f"webhooks/{account['profile']}"]
        day["not_valid"] = account["not_valid"] = fault(day, account["rate_limited_429"])
        if account["not_valid"]:
            label = f"[{LABELS.get(account['profile'], account['profile'])},"
            for row in part["rows"]:
                if label in row["metric"]:
                    row["met"], row["note"] = None, f"NOT VALID: {account['not_valid']}"
    return part


def merge(parts: list[dict[str, Any]], results: Path = RESULTS) -> dict[str, Any]:
    """One result from several, profile by profile (the chart written in `results`)."""
    merged: dict[str, Any] = {**parts[0], "rows": [], "notes": [], "seconds": 0.0}
    details: dict[str, Any] = {"clock": {}, "days": {}, "table": [], "accounts": []}
    for part in parts:
        got = part["details"]
        profiles = {a["profile"] for a in got["accounts"]}
        labels = [f"[{LABELS.get(p, p)}," for p in profiles]
        keep = [r for r in merged["rows"] if not any(label in r["metric"] for label in labels)]
        merged["rows"] = keep + part["rows"]
        details["table"] = [r for r in details["table"] if r["profile"] not in profiles]
        details["table"] += got["table"]
        details["accounts"] = [a for a in details["accounts"] if a["profile"] not in profiles]
        details["accounts"] += got["accounts"]
        details["clock"] |= {k: v for k, v in got["clock"].items() if k.split("/")[1] in profiles}
        details["days"] |= got["days"]
        merged["notes"] += part["notes"]
        merged["seconds"] += part["seconds"]
    chart = write_chart(details["table"], details["accounts"], results / "economy.png")
    details |= {
        "chart": chart.name,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "readme": markdown(details["table"], details["accounts"]),
        "merged_from": len(parts),
    }
    merged["details"] = details
    return merged


def main() -> int:
    """Merge the files named on the command line into economy.json."""
    parts = [judged(json.loads(Path(name).read_text())) for name in sys.argv[1:]]
    merged = merge(parts)
    (RESULTS / "economy.json").write_text(
        json.dumps(merged, indent=2, default=str, allow_nan=True) + "\n"
    )
    print(merged["details"]["readme"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
