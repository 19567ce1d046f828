"""3. Freshness lag and one worker's rate. Lag: webhook received -> record readable (polling
PostgreSQL), p50 and p99, at 10 and at 200 webhooks/s. Rate: one whoop-sync worker's events/s over a
backlog, against a naive arq worker (bench/baselines/worker.py: the same WHOOP calls, one upsert per
record) over the same events, on the same simulator, PostgreSQL and Redis. webhook, api and worker
processes on PostgreSQL + Redis, the simulator at zero latency."""

from __future__ import annotations

import asyncio
import time
import uuid

import psutil

from bench.backlog import (
    BASELINE_SQL,
    LIMIT_S,
    PRODUCT_SQL,
    Drain,
    baseline_drain,
    baseline_env,
    baseline_ready,
    baseline_table,
    poll_visible,
    product_drain,
    start_baseline_worker,
)
from bench.connect import connected_pipeline
from bench.infra import (
    CLIENT_SECRET,
    Cluster,
    bench_database,
    cluster,
    flush_redis,
    plain_dsn,
    wait_http,
)
from bench.openloop import Planned, run_open_loop
from bench.options import Options
from bench.result import Row, ScenarioResult
from bench.scenarios.common import at_least, info, median
from bench.sim import SimControl, direct_tokens
from bench.stats import ratio, summarize_ms
from bench.webhooks import signed

USERS = 20
RATES = (10, 200)
GOAL_MS = (250.0, 2000.0)  # p99 at each rate
WORKER_RATIO = 0.5  # whoop-sync's events/s at least this share of the naive worker's


async def _one_rate(
    procs: Cluster,
    ctl: SimControl,
    dsn: str,
    webhook_url: str,
    whoop_ids: list[int],
    rate: int,
    seconds: float,
    naive: bool = False,
) -> dict[str, object]:
    """Send `rate` sleep.updated webhooks a second for `seconds`; each one's lag to its row. The
    product's rows, or with `naive` the naive pipeline's."""
    count = int(rate * seconds)
    records = await asyncio.gather(
        *(ctl.create(whoop_ids[i % len(whoop_ids)], "sleep") for i in range(count))
    )
    plan: list[Planned] = []
    for i, record in enumerate(records):
        hook = signed(CLIENT_SECRET, int(record["user_id"]), record["id"], "sleep.updated")
        plan.append((i / rate, "POST", "/webhooks/whoop", hook.headers(), hook.body.decode()))
    ids: list[object] = [r["id"] if naive else uuid.UUID(r["id"]) for r in records]
    sql = BASELINE_SQL if naive else PRODUCT_SQL
    busy_before, wall_before, cpu_before = _busy(), time.monotonic(), procs.cpu_by_process()
    poller = asyncio.create_task(poll_visible(dsn, sql, ids, time.time() + seconds + 60))
    sent = await run_open_loop(webhook_url, plan, connections=32)
    seen = await poller
    busy, wall = _busy() - busy_before, time.monotonic() - wall_before
    cpu_after = procs.cpu_by_process()
    per_process = {
        name: round((cpu_after[name] - cpu_before[name]) * 1000 / max(1, len(seen)), 2)
        for name in cpu_after
        if name in cpu_before
    }
    lags = [seen[i] - sent.sent_at[n] for n, i in enumerate(ids) if i in seen]
    return {
        "rate": rate,
        "sent": count,
        "statuses": sent.statuses(),
        "readable": len(seen),
        "not_readable_within_60s": count - len(seen),
        "load_max_slip_s": sent.max_slip_s,
        # Every process's CPU (load generator, receiver, worker, simulator, PostgreSQL, Redis)
        # per event, and how busy the machine's cores were from the first send to the last row.
        "machine_cpu_ms_per_event": round(busy * 1000 / max(1, len(seen)), 2),
        "machine_busy_share": round(busy / (wall * (psutil.cpu_count() or 1)), 2),
        "cpu_ms_per_event_by_process": per_process,
        **summarize_ms(lags),
    }


async def _naive_rate(
    procs: Cluster,
    base_env: dict[str, str],
    ctl: SimControl,
    dsn: str,
    whoop_ids: list[int],
    seconds: float,
) -> dict[str, object]:
    """The naive pipeline (bench/baselines: a receiver that checks the signature and queues an arq
    job, the naive worker) at the highest rate, on the same simulator, PostgreSQL and Redis."""
    await baseline_table(dsn)
    app = "bench.baselines.webhook_app:create_queueing_app"
    hook = procs.uvicorn("webhook baseline", app, base_env | {"BENCH_SECRET": CLIENT_SECRET})
    worker = start_baseline_worker(procs, base_env)
    try:
        await wait_http(hook)
        await baseline_ready(worker)
        return await _one_rate(procs, ctl, dsn, hook.url, whoop_ids, RATES[-1], seconds, naive=True)
    finally:
        worker.stop()
        hook.stop()


def _busy() -> float:
    """CPU seconds the whole machine has been busy."""
    t = psutil.cpu_times()
    return float(t.user + t.system + t.nice + t.irq + t.softirq)


async def _drains(
    procs: Cluster,
    envs: tuple[dict[str, str], dict[str, str]],
    ctl: SimControl,
    dsn: str,
    hook_url: str,
    whoop_ids: list[int],
    opts: Options,
) -> dict[str, list[Drain]]:
    """Each round, `opts.worker_events` new sleeps drained by each worker in turn (whoop-sync first
    in even rounds), the other worker stopped meanwhile."""
    env, base_env = envs
    drains: dict[str, list[Drain]] = {"whoop-sync": [], "baseline": []}
    for round_ in range(opts.rounds):
        records = await asyncio.gather(
            *(ctl.create(whoop_ids[i % len(whoop_ids)], "sleep") for i in range(opts.worker_events))
        )
        order = ["whoop-sync", "baseline"][:: -1 if round_ % 2 else 1]
        for name in order:
            if name == "whoop-sync":
                drain = await product_drain(procs, env, ctl, dsn, hook_url, records)
            else:
                drain = await baseline_drain(procs, base_env, ctl, dsn, records)
            drains[name].append(drain)
    return drains


def _peaks(procs: Cluster) -> dict[str, float]:
    """Peak RSS per process name (a worker started again keeps its name)."""
    peaks: dict[str, float] = {}
    for proc in procs.procs:
        if proc.name != "simulator":
            peaks[proc.name] = max(peaks.get(proc.name, 0.0), proc.peak_rss_mb)
    return peaks


def _lag_rows(rates: dict[str, dict[str, object]], naive: dict[str, object]) -> list[Row]:
    """p50 (no goal) and p99 (against its goal) at each rate; at the highest rate the naive
    pipeline's figures, measured in the same run, are the baseline."""
    rows: list[Row] = []
    for rate, goal in zip(RATES, GOAL_MS, strict=True):
        figures = rates[str(rate)]
        base = naive if rate == RATES[-1] else None
        p50, p99 = float(figures["p50_ms"]), float(figures["p99_ms"])  # type: ignore[arg-type]
        base_p50 = float(base["p50_ms"]) if base else None  # type: ignore[arg-type]
        base_p99 = float(base["p99_ms"]) if base else None  # type: ignore[arg-type]
        lost = int(figures["not_readable_within_60s"])  # type: ignore[call-overload]
        note = f"{lost} not readable within 60 s" if lost else _machine(figures)
        if base:
            note += f"; the naive pipeline's {_machine(base)}"
        rows += [
            info(f"freshness lag at {rate}/s: p50", p50, base_p50, "ms"),
            Row(
                f"freshness lag at {rate}/s: p99",
                p99,
                base_p99,
                "ms",
                ratio(p99, base_p99) if base_p99 is not None else None,
                f"< {goal:,.0f} ms",
                p99 < goal and lost == 0,
                note,
            ),
        ]
    return rows


def _machine(figures: dict[str, object]) -> str:
    return (
        f"machine CPU per event {figures['machine_cpu_ms_per_event']} ms, "
        f"cores busy {float(figures['machine_busy_share']):.0%}"  # type: ignore[arg-type]
    )


def _worker_row(drains: dict[str, list[Drain]]) -> Row:
    """whoop-sync's events/s over a backlog against the naive worker's."""
    mine, base = drains["whoop-sync"], drains["baseline"]
    missing = sum(d.events - d.readable for d in mine)
    calls = sum(d.calls for d in mine) / max(1, sum(d.events for d in mine))
    base_calls = sum(d.calls for d in base) / max(1, sum(d.events for d in base))
    cpu = median([d.cpu_ms_per_event or 0.0 for d in mine])
    base_cpu = median([d.cpu_ms_per_event or 0.0 for d in base])
    box = median([d.machine_cpu_ms_per_event or 0.0 for d in mine])
    base_box = median([d.machine_cpu_ms_per_event or 0.0 for d in base])
    note = (
        f"WHOOP calls per event {calls:.2f} vs {base_calls:.2f}; worker CPU per event "
        f"{cpu:.2f} vs {base_cpu:.2f} ms; the whole machine's {box:.2f} vs {base_box:.2f} ms"
    )
    if missing:
        note += f"; {missing} events not readable within {LIMIT_S:g} s"
    return at_least(
        "one worker: events/s over a backlog vs naive arq worker",
        median([d.per_second for d in mine]),
        median([d.per_second for d in base]),
        "events/s",
        WORKER_RATIO,
        note,
    )


async def run(opts: Options) -> ScenarioResult:
    """Connect users; for each rate send sleep.updated webhooks on schedule and time them; then
    time each worker over backlogs of the same new sleeps."""
    result = ScenarioResult(3, "Freshness lag")
    rates: dict[str, dict[str, object]] = {}
    async with bench_database("fresh") as db:
        await flush_redis()
        with cluster() as procs:
            up = await connected_pipeline(procs, db, USERS)
            env, hook, worker, ctl, whoop_ids = up.env, up.hook, up.worker, up.ctl, up.whoop_ids
            try:
                for rate in RATES:
                    rates[str(rate)] = await _one_rate(
                        procs, ctl, plain_dsn(db), hook.url, whoop_ids, rate, opts.freshness_seconds
                    )
                    await asyncio.sleep(1)
                worker.stop()  # from here on, each drain starts the one worker it times
                tokens = await direct_tokens(up.sim, whoop_ids, up.redirect)
                base_env = baseline_env(plain_dsn(db), f"{up.sim.url}/developer", tokens)
                naive = await _naive_rate(
                    procs, base_env, ctl, plain_dsn(db), whoop_ids, opts.freshness_seconds
                )
                drains = await _drains(
                    procs, (env, base_env), ctl, plain_dsn(db), hook.url, whoop_ids, opts
                )
            finally:
                await ctl.aclose()
        result.memory_mb = _peaks(procs)
    await flush_redis()
    result.details = {
        "rates": rates,
        "naive_pipeline": naive,
        "users": USERS,
        "worker_backlog": {name: [d.as_dict() for d in runs] for name, runs in drains.items()},
    }
    result.rows = [_worker_row(drains), *_lag_rows(rates, naive)]
    result.notes.append(
        f"{USERS} connected users; sleeps created in the simulator (no latency, budget unbounded "
        f"on both sides), then sleep.updated webhooks sent open-loop for {opts.freshness_seconds:g}s "
        "per rate from a separate process; lag = first sight of the row by a 5 ms PostgreSQL "
        "poll minus the send time; each event fetches the sleep and its cycle"
    )
    result.notes.append(
        f"worker rate: {opts.rounds} round(s) of {opts.worker_events} new sleeps' sleep.updated "
        "events queued while no worker runs (whoop-sync's through its webhook receiver, the "
        "naive worker's put on its arq queue), then one worker started, 20 job slots each; "
        "events/s from the first record readable to the last (start-up left out), the two "
        "workers taking turns on the same records; the naive worker makes the same WHOOP calls "
        "(the sleep by id, a new night's page of cycles) and one INSERT ... ON CONFLICT per "
        "record into a table of its own, nothing else"
    )
    return result
