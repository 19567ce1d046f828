"""3. Freshness lag: webhook received -> record readable (polling PostgreSQL), p50 and p99, at 10
and at 200 webhooks/s; webhook + worker processes on PostgreSQL + Redis, simulator at zero latency."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

from bench.connect import connect_users, wait_backfilled
from bench.infra import (
    CLIENT_SECRET,
    bench_database,
    cluster,
    flush_redis,
    free_port,
    plain_dsn,
    product_env,
    start_pipeline,
)
from bench.openloop import Planned, run_open_loop
from bench.options import Options
from bench.result import Row, ScenarioResult
from bench.scenarios.common import info
from bench.sim import SimControl, product_whoop_env, start_sim
from bench.stats import summarize_ms
from bench.webhooks import signed

USERS = 20
RATES = (10, 200)
GOAL_MS = 250.0


async def _poll_visible(dsn: str, ids: list[uuid.UUID], until: float) -> dict[uuid.UUID, float]:
    """First moment (epoch s) each sleep is readable in the database, polling every 5 ms."""
    seen: dict[uuid.UUID, float] = {}
    pending = set(ids)
    conn = await asyncpg.connect(dsn)
    try:
        while pending and time.time() < until:
            rows = await conn.fetch(
                "SELECT id FROM whoop_sleep WHERE id = ANY($1::uuid[])", list(pending)
            )
            now = time.time()
            for row in rows:
                seen[row["id"]] = now
                pending.discard(row["id"])
            await asyncio.sleep(0.005)
    finally:
        await conn.close()
    return seen


async def _one_rate(
    ctl: SimControl, dsn: str, webhook_url: str, whoop_ids: list[int], rate: int, seconds: float
) -> dict[str, object]:
    count = int(rate * seconds)
    records = await asyncio.gather(
        *(ctl.create(whoop_ids[i % len(whoop_ids)], "sleep") for i in range(count))
    )
    plan: list[Planned] = []
    for i, record in enumerate(records):
        hook = signed(CLIENT_SECRET, int(record["user_id"]), record["id"], "sleep.updated")
        plan.append((i / rate, "POST", "/webhooks/whoop", hook.headers(), hook.body.decode()))
    ids = [uuid.UUID(r["id"]) for r in records]
    poller = asyncio.create_task(_poll_visible(dsn, ids, time.time() + seconds + 60))
    sent = await run_open_loop(webhook_url, plan, connections=32)
    seen = await poller
    lags = [seen[i] - sent.sent_at[n] for n, i in enumerate(ids) if i in seen]
    return {
        "rate": rate,
        "sent": count,
        "statuses": sent.statuses(),
        "readable": len(seen),
        "not_readable_within_60s": count - len(seen),
        "load_max_slip_s": sent.max_slip_s,
        **summarize_ms(lags),
    }


async def run(opts: Options) -> ScenarioResult:
    """Connect users, then for each rate send sleep.updated webhooks on schedule and time them."""
    result = ScenarioResult(3, "Freshness lag")
    rates: dict[str, dict[str, object]] = {}
    async with bench_database("fresh") as db:
        await flush_redis()
        with cluster() as procs:
            sim = await start_sim(procs, users=USERS, days=2, per_minute=10**6, per_day=10**8)
            api_port = free_port()
            env = product_env(
                db,
                whoop_redirect_uri=f"http://127.0.0.1:{api_port}/api/v1/whoop/callback",
                whoop_rate_limit_per_minute=10**6,
                whoop_rate_limit_per_day=10**8,
                backfill_days=2,
            ) | product_whoop_env(sim)
            api, hook, _worker = await start_pipeline(procs, env, api_port=api_port)
            ctl = SimControl(sim)
            try:
                whoop_ids = (await ctl.user_ids())[:USERS]
                await connect_users(api, [(uuid.uuid4(), w) for w in whoop_ids])
                await wait_backfilled(plain_dsn(db), len(whoop_ids), 120)
                for rate in RATES:
                    rates[str(rate)] = await _one_rate(
                        ctl, plain_dsn(db), hook.url, whoop_ids, rate, opts.freshness_seconds
                    )
                    await asyncio.sleep(1)
            finally:
                await ctl.aclose()
        result.memory_mb = {p.name: p.peak_rss_mb for p in procs.procs if p.name != "simulator"}
    await flush_redis()
    result.details = {"rates": rates, "users": USERS}
    low, high = rates[str(RATES[0])], rates[str(RATES[1])]
    p99_low = float(low["p99_ms"])  # type: ignore[arg-type]
    lost = int(low["not_readable_within_60s"])  # type: ignore[call-overload]
    result.rows = [
        info(f"freshness lag at {RATES[0]}/s: p50", float(low["p50_ms"]), None, "ms"),  # type: ignore[arg-type]
        Row(
            f"freshness lag at {RATES[0]}/s: p99",
            p99_low,
            None,
            "ms",
            None,
            f"< {GOAL_MS:g} ms",
            p99_low < GOAL_MS and lost == 0,
            f"{lost} not readable within 60 s" if lost else "",
        ),
        info(f"freshness lag at {RATES[1]}/s: p50", float(high["p50_ms"]), None, "ms"),  # type: ignore[arg-type]
        info(
            f"freshness lag at {RATES[1]}/s: p99",
            float(high["p99_ms"]),  # type: ignore[arg-type]
            None,
            "ms",
            f"{high['not_readable_within_60s']} not readable within 60 s"
            if high["not_readable_within_60s"]
            else "",
        ),
    ]
    result.notes.append(
        f"{USERS} connected users; sleeps created in the simulator (no latency, budget unbounded "
        f"on both sides), then sleep.updated webhooks sent open-loop for {opts.freshness_seconds:g}s "
        "per rate from a separate process; lag = first sight of the row by a 5 ms PostgreSQL "
        "poll minus the send time; each event fetches the sleep and its cycle"
    )
    return result
