"""`make bench`: run the benchmarks, print the table, write latest.json and a PNG.

.venv/bin/python -m bench [--only 1,3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
import traceback
from collections.abc import Awaitable, Callable

from bench.chart import write_chart
from bench.options import Options
from bench.report import RESULTS_DIR, table, write_json
from bench.result import ScenarioResult
from bench.wrk import ensure_wrk

SCENARIOS: dict[int, tuple[str, str]] = {
    1: ("bench.scenarios.read", "Cached read"),
    2: ("bench.scenarios.ingest", "Webhook ingest"),
    3: ("bench.scenarios.freshness", "Freshness lag"),
    4: ("bench.scenarios.economy", "Upstream economy"),
    5: ("bench.scenarios.backfill", "Backfill at the ceiling"),
    7: ("bench.scenarios.feed", "Change feed"),
}
# 6 (memory) is measured inside every other one: peak RSS of each process under its load.


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """--only N[,M] and --quick."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        type=lambda s: sorted({int(n) for n in s.split(",") if n.strip()}),
        default=sorted(SCENARIOS),
        help="comma-separated measurement numbers (1-5, 7; 6, memory, is part of each)",
    )
    parser.add_argument("--quick", action="store_true", help="short, small runs for development")
    return parser.parse_args(argv)


async def run_one(number: int, opts: Options) -> ScenarioResult:
    """Run one measurement; a failure becomes a result that says so, not a crash."""
    module_name, title = SCENARIOS[number]
    started = time.monotonic()
    print(f"== [{number}] {title} ...", flush=True)
    try:
        module = importlib.import_module(module_name)
        runner: Callable[[Options], Awaitable[ScenarioResult]] = module.run
        result = await runner(opts)
    except Exception as exc:
        traceback.print_exc()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        result = ScenarioResult(number, title, error=message[:200])
    result.seconds = time.monotonic() - started
    print(f"   [{number}] done in {result.seconds:.0f}s", flush=True)
    return result


def memory_rows(results: list[ScenarioResult]) -> ScenarioResult:
    """6. Memory: the peak RSS each process reached, gathered from the other measurements."""
    from bench.result import Row

    memory = ScenarioResult(6, "Memory (peak RSS)")
    for result in results:
        for name, mb in result.memory_mb.items():
            memory.rows.append(
                Row(f"peak RSS: {name} (under [{result.number}])", mb, None, "MiB", None, "-", None)
            )
    return memory


async def main_async(args: argparse.Namespace) -> int:
    """Run, report, write."""
    opts = Options.make(args.quick)
    if ensure_wrk() is None:
        print(
            "bench: wrk is missing and could not be installed; 1 and 2 will fail", file=sys.stderr
        )
    started = time.monotonic()
    results = [await run_one(n, opts) for n in args.only if n in SCENARIOS]
    results.append(memory_rows(results))
    total = time.monotonic() - started
    print()
    print(table(results))
    options = {"quick": args.quick, "only": args.only, **opts.__dict__}
    path = write_json(results, options, total)
    mode = "quick run" if args.quick else "full run"
    chart = write_chart(
        results, RESULTS_DIR / "latest.png", f"{mode}, {total:.0f}s, 2-core machine"
    )
    print(f"\nwrote {path.relative_to(RESULTS_DIR.parents[1])} and {chart.name} in {total:.0f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m bench`."""
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
