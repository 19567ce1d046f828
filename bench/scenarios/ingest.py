"""2. Webhook ingest: accepted webhooks/s (signature check, record, enqueue) of the real
`whoop-sync webhook` on PostgreSQL + Redis, against a bare endpoint answering 204."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil

from bench.infra import (
    CLIENT_SECRET,
    Proc,
    bench_database,
    cluster,
    flush_redis,
    plain_dsn,
    product_env,
    wait_http,
)
from bench.options import Options
from bench.result import Row, ScenarioResult
from bench.scenarios.common import at_least, info, median
from bench.stats import percentile
from bench.storm import Answer, storm
from bench.webhooks import sleep_updates, write_file
from bench.wrk import WrkResult, run_wrk

USERS = range(20001, 20101)  # WHOOP ids: the webhook records events without looking users up
BASELINE_LINES = 20_000  # the baseline ignores bodies, so its file may wrap
STORM = 300  # deliveries sent at the same moment, each on its own connection
STORM_PAUSE = 2.0  # seconds between storms, for the queue of the last one to settle


@dataclass
class StormRun:
    """One server's storms: every answer, and the CPU time the server spent on each storm."""

    answers: list[Answer] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


async def _storms(servers: dict[str, Proc], count: int) -> dict[str, StormRun]:
    """`count` storms of STORM fresh signed webhooks against each server, the servers taking turns
    (after one warm-up storm each, not counted), so that the machine's load falls on each alike."""
    runs = {name: StormRun() for name in servers}
    for turn in range(count + 1):
        for name, proc in servers.items():
            process = psutil.Process(proc.popen.pid)
            hooks = list(sleep_updates(CLIENT_SECRET, STORM, USERS))
            cpu_before = sum(process.cpu_times()[:2])
            answers = await storm(proc.url, hooks)
            await asyncio.sleep(STORM_PAUSE)  # what the storm set off is over by now
            if turn:
                runs[name].answers += answers
                runs[name].cpu_ms.append((sum(process.cpu_times()[:2]) - cpu_before) * 1000)
    return runs


def _storm_rows(mine: StormRun, base: StormRun) -> list[Row]:
    """Answer p50 and p99 under a storm (WHOOP wants a 2xx within a second), and the server's CPU
    time per storm (what the answers would take on an idle core), vs a bare 204."""
    ms = [a.seconds * 1000 for a in mine.answers]
    base_ms = [a.seconds * 1000 for a in base.answers]
    refused = sum(1 for a in mine.answers if not 200 <= a.status < 300)
    note = f"{refused} of {len(mine.answers)} not answered 2xx" if refused else ""
    p99 = percentile(ms, 99)
    return [
        info(
            f"webhook storm: answer p50 ({STORM} at once)",
            percentile(ms, 50),
            percentile(base_ms, 50),
            "ms",
        ),
        Row(
            f"webhook storm: answer p99 ({STORM} at once)",
            p99,
            percentile(base_ms, 99),
            "ms",
            None,
            "< 1,000 ms",
            p99 < 1000 and not refused,
            note,
        ),
        info(
            f"webhook storm: server CPU per storm of {STORM}",
            median(mine.cpu_ms),
            median(base.cpu_ms),
            "ms",
        ),
    ]


async def _measure(proc: Proc, opts: Options, lines: int, tmp: Path) -> tuple[WrkResult, int]:
    """Warm up, then one timed wrk run with `lines` fresh signed webhooks; (result, lines)."""
    warm, timed = tmp / f"{proc.port}-warm.tsv", tmp / f"{proc.port}-timed.tsv"
    write_file(warm, sleep_updates(CLIENT_SECRET, 3000, USERS))
    await run_wrk(
        proc.url,
        "webhook.lua",
        opts.warmup_seconds,
        opts.connections,
        {"BENCH_WEBHOOKS": str(warm)},
    )
    write_file(timed, sleep_updates(CLIENT_SECRET, lines, USERS))
    result = await run_wrk(
        proc.url,
        "webhook.lua",
        opts.measure_seconds,
        opts.connections,
        {"BENCH_WEBHOOKS": str(timed)},
    )
    return result, lines


async def run(opts: Options) -> ScenarioResult:
    """Baseline first (its rate sizes the product's file of unique webhooks), then the product."""
    result = ScenarioResult(2, "Webhook ingest")
    runs: dict[str, list[WrkResult]] = {"whoop-sync": [], "baseline": []}
    recorded = 0
    async with bench_database("ingest") as db:
        await flush_redis()
        with tempfile.TemporaryDirectory() as tmp_dir, cluster() as procs:
            tmp = Path(tmp_dir)
            baseline = procs.uvicorn(
                "webhook baseline", "bench.baselines.webhook_app:create_app", {}
            )
            hook = procs.whoop_sync("whoop-sync webhook", "webhook", product_env(db))
            await wait_http(baseline)
            await wait_http(hook)
            for _ in range(opts.rounds):
                base_run, _ = await _measure(baseline, opts, BASELINE_LINES, tmp)
                runs["baseline"].append(base_run)
                # Enough unique webhooks for the product even at the baseline's rate.
                lines = int(base_run.requests * 1.2) + 1000
                mine, _ = await _measure(hook, opts, lines, tmp)
                if mine.requests > lines:
                    result.notes.append("webhook file wrapped: some requests were duplicates")
                runs["whoop-sync"].append(mine)
            storms = await _storms({"baseline": baseline, "whoop-sync": hook}, 2 * opts.rounds + 1)
        conn = await asyncpg.connect(plain_dsn(db))
        try:
            recorded = int(await conn.fetchval("SELECT count(*) FROM whoop_webhook_event"))
        finally:
            await conn.close()
        result.memory_mb = {p.name: p.peak_rss_mb for p in procs.procs}
    await flush_redis()
    mine_runs, base_runs = runs["whoop-sync"], runs["baseline"]
    rate = median([r.ok_per_second for r in mine_runs])
    base_rate = median([r.ok_per_second for r in base_runs])
    failures = sum(r.status_errors + r.socket_errors for r in mine_runs)
    note = f"{failures} requests not answered 2xx" if failures else ""
    result.rows = [
        at_least("webhook ingest: accepted/s vs bare 204", rate, base_rate, "req/s", 0.5, note),
        Row(
            "webhook ingest: accepted/s absolute",
            rate,
            None,
            "req/s",
            None,
            ">= 1,000/s",
            rate >= 1000,
        ),
        info(
            "webhook ingest: p99 latency",
            median([r.p99_ms for r in mine_runs]),
            median([r.p99_ms for r in base_runs]),
            "ms",
        ),
        *_storm_rows(storms["whoop-sync"], storms["baseline"]),
    ]
    accepted = sum(r.ok for r in mine_runs)
    result.details = {
        "recorded_events_in_db": recorded,
        "accepted_including_warmup_excluded": accepted,
        "rounds": {name: [r.as_dict() for r in rs] for name, rs in runs.items()},
        "storm_answers_ms": {
            name: sorted(round(a.seconds * 1000, 1) for a in run.answers)
            for name, run in storms.items()
        },
        "storm_cpu_ms": {name: [round(c, 1) for c in run.cpu_ms] for name, run in storms.items()},
    }
    result.notes.append(
        f"wrk + Lua, 1 thread, {opts.connections} connections, each webhook signed beforehand "
        f"(unique trace_id), {opts.rounds} round(s) of {opts.measure_seconds:g}s; no worker runs, "
        f"jobs stay queued in Redis; {recorded} events recorded in PostgreSQL (warm-ups included)"
    )
    result.notes.append(
        f"storm: {STORM} signed webhooks sent at the same moment, each on a new connection "
        f"(asyncio streams), after the throughput runs; {2 * opts.rounds + 1} storms against each "
        f"server, taking turns, {STORM_PAUSE:g}s apart, after a warm-up storm each; percentiles "
        "over every answer, CPU time (user + system) of the server process per storm"
    )
    return result
