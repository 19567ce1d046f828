"""5. Backfill at the ceiling: users connecting at once while the simulator enforces the app's
per-minute budget, the product's WHOOPSYNC_WHOOP_RATE_LIMIT_PER_MINUTE matched.

The budget is scaled rather than the clock: simulator and product both count calls per real minute
(100 x SCALE), so that their minute windows agree; the total is several minutes' budget, so
that the ceiling binds.
"""

from __future__ import annotations

import time
import uuid

from bench.connect import connect_users, wait_backfilled
from bench.infra import (
    bench_database,
    cluster,
    flush_redis,
    free_port,
    plain_dsn,
    product_env,
    wait_alive,
    wait_http,
)
from bench.options import Options
from bench.result import Row, ScenarioResult
from bench.sim import SimControl, data_calls, product_whoop_env, start_sim


async def run(opts: Options) -> ScenarioResult:
    """Connect every member at once; time until every backfill finished; count calls and 429s."""
    result = ScenarioResult(5, "Backfill at the ceiling")
    users, days = opts.backfill_users, opts.backfill_days
    scale = 9 if not opts.quick else 1
    per_minute = 100 * scale
    async with bench_database("backfill") as db:
        await flush_redis()
        with cluster() as procs:
            sim = await start_sim(
                procs, users=users, days=days, per_minute=per_minute, per_day=10**8
            )
            api_port = free_port()
            env = product_env(
                db,
                whoop_redirect_uri=f"http://127.0.0.1:{api_port}/api/v1/whoop/callback",
                whoop_rate_limit_per_minute=per_minute,
                whoop_rate_limit_per_day=10**8,
                backfill_days=days,
            ) | product_whoop_env(sim)
            api = procs.whoop_sync("whoop-sync api", "api", env, port=api_port)
            worker = procs.whoop_sync("whoop-sync worker", "worker", env, http=False)
            await wait_http(api)
            await wait_alive(worker, 1.0)
            ctl = SimControl(sim)
            try:
                whoop_ids = (await ctl.user_ids())[:users]
                await ctl.reset()
                started = time.time()
                await connect_users(api, [(uuid.uuid4(), w) for w in whoop_ids], concurrency=50)
                connected = time.time()
                finished = await wait_backfilled(plain_dsn(db), users, 900, poll=0.05)
                counters = await ctl.counters()
            finally:
                await ctl.aclose()
        result.memory_mb = {p.name: p.peak_rss_mb for p in procs.procs if p.name != "simulator"}
    await flush_redis()
    elapsed = finished - started
    calls = data_calls(counters)
    limited = int(counters["rate_limited"])
    minimum = calls / (per_minute / 60)
    budget_use = calls / (per_minute * elapsed / 60)
    result.rows = [
        Row(
            "backfill: budget use (calls / calls allowed)",
            budget_use,
            None,
            "",
            None,
            ">= 0.9",
            budget_use >= 0.9,
        ),
        Row("backfill: 429 answers from WHOOP", limited, None, "", None, "0", limited == 0),
        Row(
            "backfill: completion / theoretical minimum",
            elapsed,
            minimum,
            "s",
            round(elapsed / minimum, 3),
            "<= 1.1x",
            elapsed / minimum <= 1.1,
        ),
    ]
    result.details = {
        "users": users,
        "days": days,
        "budget_per_minute": per_minute,
        "data_calls": calls,
        "oauth_calls": int(counters["total"]) - calls,
        "connect_flow_seconds": round(connected - started, 2),
        "elapsed_seconds": round(elapsed, 2),
        "theoretical_minimum_seconds": round(minimum, 2),
        "max_calls_in_one_minute_window": counters.get("max_per_minute"),
        "by_endpoint": counters.get("by_endpoint"),
        "by_status": counters.get("by_status"),
    }
    result.notes.append(
        f"{users} users with {days} days of history connect at once (50 at a time through the "
        f"api's connect flow); budget scaled to {per_minute}/min on both sides ({scale}x WHOOP's "
        "100/min, clock at real speed); completion = first connect to last backfill attempt recorded"
    )
    return result
