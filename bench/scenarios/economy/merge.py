"""Join the economy results of runs that each measured some profiles into one economy.json and
economy.png (a full run split in two on a busy machine):

    python -m bench.scenarios.economy.merge FIRST.json SECOND.json [...]

Days, goal rows, tables and clocks are taken from each file in turn (a later file's profile
replaces an earlier one's); the README's tables and the chart are made again from the whole.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.scenarios.economy.chart import write_chart
from bench.scenarios.economy.readme import LABELS, markdown

RESULTS = Path(__file__).resolve().parents[2] / "results"


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
    parts = [json.loads(Path(name).read_text()) for name in sys.argv[1:]]
    merged = merge(parts)
    (RESULTS / "economy.json").write_text(
        json.dumps(merged, indent=2, default=str, allow_nan=True) + "\n"
    )
    print(merged["details"]["readme"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
