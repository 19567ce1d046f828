"""1. Cached read: GET /api/v1/smart/sleep (30 fresh records) on PostgreSQL + Redis, real
`whoop-sync api`, against bare FastAPI + asyncpg doing the same SELECT (both uvicorn, 1 worker)."""

from __future__ import annotations

import json

import httpx

from bench.infra import (
    Proc,
    bench_database,
    cluster,
    flush_redis,
    plain_dsn,
    product_env,
    wait_http,
)
from bench.options import Options
from bench.result import ScenarioResult
from bench.scenarios.common import at_least, at_most, dev_token, info, median
from bench.seed import seed_cached_reader
from bench.wrk import WrkResult, run_wrk

PATH = "/api/v1/smart/sleep"


async def _same_answer(api: Proc, baseline: Proc, token: str) -> None:
    """Both answer 200 with the same 30 records; the product from its cache."""
    async with httpx.AsyncClient(timeout=10) as client:
        mine = await client.get(api.url + PATH, headers={"Authorization": f"Bearer {token}"})
        theirs = await client.get(baseline.url + PATH)
    if mine.status_code != 200:
        raise RuntimeError(f"api answered {mine.status_code}: {mine.text[:300]}")
    body, reference = mine.json(), theirs.json()
    if body["metadata"].get("source") != "cache":
        raise RuntimeError(f"api did not answer from its cache: {json.dumps(body['metadata'])}")
    if body["data"] != reference["data"] or len(body["data"]) != 30:
        raise RuntimeError("api and baseline disagree on the records")


async def run(opts: Options) -> ScenarioResult:
    """Measure both servers in alternating rounds; compare medians."""
    result = ScenarioResult(1, "Cached read")
    runs: dict[str, list[WrkResult]] = {"whoop-sync": [], "baseline": []}
    async with bench_database("read") as db:
        user_id = await seed_cached_reader(db)
        await flush_redis()
        env = product_env(db)
        token = await dev_token(env, user_id)
        with cluster() as procs:
            baseline = procs.uvicorn(
                "read baseline",
                "bench.baselines.read_app:create_app",
                {"BENCH_PG_DSN": plain_dsn(db), "BENCH_USER_ID": str(user_id)},
            )
            api = procs.whoop_sync("whoop-sync api", "api", env)
            await wait_http(baseline)
            await wait_http(api)
            await _same_answer(api, baseline, token)
            targets = (("baseline", baseline, ""), ("whoop-sync", api, token))
            for _ in range(opts.rounds):
                for name, proc, auth in targets:
                    wrk_env = {"BENCH_AUTH": auth}
                    url = proc.url + PATH
                    await run_wrk(url, "get.lua", opts.warmup_seconds, opts.connections, wrk_env)
                    runs[name].append(
                        await run_wrk(
                            url, "get.lua", opts.measure_seconds, opts.connections, wrk_env
                        )
                    )
        result.memory_mb = {p.name: p.peak_rss_mb for p in procs.procs}
    await flush_redis()
    mine, theirs = runs["whoop-sync"], runs["baseline"]
    errors = sum(r.status_errors + r.socket_errors for r in mine)
    rps = median([r.ok_per_second for r in mine]), median([r.ok_per_second for r in theirs])
    p50 = median([r.p50_ms for r in mine]), median([r.p50_ms for r in theirs])
    p99 = median([r.p99_ms for r in mine]), median([r.p99_ms for r in theirs])
    note = f"{errors} failed requests" if errors else ""
    result.rows = [
        at_least("cached read: requests/s", *rps, "req/s", 0.8, note),
        info("cached read: p50 latency", *p50, "ms"),
        at_most("cached read: p99 latency", *p99, "ms", 1.5),
    ]
    result.details = {
        "connections": opts.connections,
        "seconds_per_round": opts.measure_seconds,
        "rounds": {name: [r.as_dict() for r in rs] for name, rs in runs.items()},
    }
    result.notes.append(
        f"wrk, 1 thread, {opts.connections} connections, {opts.rounds} alternating round(s) of "
        f"{opts.measure_seconds:g}s after {opts.warmup_seconds:g}s warm-up; medians of rounds; "
        "baseline splices the stored JSON text (no auth, no sync-log lookup)"
    )
    return result
