"""Run bench/loadgen.py in its own process and read back what it measured."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.infra import ROOT

Planned = tuple[float, str, str, dict[str, str], str | None]


@dataclass
class OpenLoopResult:
    """Per-request outcomes of one open-loop run."""

    started_at: float
    max_slip_s: float
    sent_at: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    source: list[str | None] = field(default_factory=list)
    detail: list[str | None] = field(default_factory=list)

    def statuses(self) -> dict[str, int]:
        """How many requests got each status (0 = no answer)."""
        return {str(k): v for k, v in sorted(Counter(self.status).items())}

    def sources(self) -> dict[str, int]:
        """How many read answers came from each metadata.source."""
        return {str(k): v for k, v in Counter(self.source).items()}

    def details(self, wanted: Callable[[int, str | None], bool]) -> list[str | None]:
        """The details (a stale_cache reason, an error's code) of the answers `wanted` picks by
        status and source."""
        picked = zip(self.status, self.source, self.detail, strict=True)
        return [d for status, source, d in picked if wanted(status, source)]


async def run_open_loop(
    base_url: str,
    requests: list[Planned],
    connections: int = 64,
    drain_seconds: float = 30.0,
) -> OpenLoopResult:
    """Send `requests` (sorted by offset) from a separate process; wait for it to finish."""
    with tempfile.TemporaryDirectory() as tmp:
        plan_path, result_path = Path(tmp) / "plan.json", Path(tmp) / "result.json"
        plan = {
            "base_url": base_url,
            "connections": connections,
            "drain_seconds": drain_seconds,
            "requests": requests,
        }
        plan_path.write_text(json.dumps(plan))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.loadgen", str(plan_path), str(result_path),
            cwd=ROOT, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"load generator failed: {err.decode()[-500:]}")
        data: dict[str, Any] = json.loads(result_path.read_text())
    result = OpenLoopResult(data["started_at"], data["max_slip_s"])
    for row in data["results"]:
        sent, latency, status, source, *rest = row or (0.0, 0.0, 0, "unsent")
        result.sent_at.append(sent)
        result.latency_s.append(latency)
        result.status.append(status)
        result.source.append(source)
        result.detail.append(rest[0] if rest else None)
    return result
