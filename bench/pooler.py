"""What a transaction pooler costs the cached read (bench 1's request, through `whoop-sync api`).

.venv/bin/python -m bench.pooler [--quick]

The api answers `GET /api/v1/smart/sleep` (30 cached sleeps) under wrk, three ways, in alternating
rounds so that the machine's drift touches each alike:
- direct: straight to PostgreSQL, WHOOPSYNC_DATABASE_POOLER=none (asyncpg's statement cache on);
- direct, pooler setting: straight to PostgreSQL with WHOOPSYNC_DATABASE_POOLER=transaction (the
  setting's own cost: no statement cache);
- through PgBouncer: a private PgBouncer in transaction mode (20 server connections) with
  WHOOPSYNC_DATABASE_POOLER=transaction.

Prints requests/s, p50 and p99 per way (medians of rounds) and the ratio to direct.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from bench.infra import bench_database, cluster, flush_redis, product_env, wait_http
from bench.options import Options
from bench.scenarios.common import dev_token
from bench.seed import seed_cached_reader
from bench.wrk import WrkResult, run_wrk
from tests.faults.pgbouncer import PgBouncer

PATH = "/api/v1/smart/sleep"


async def measure(quick: bool) -> dict[str, dict[str, float]]:
    """Medians of rounds per way."""
    opts = Options.make(quick)
    runs: dict[str, list[WrkResult]] = {}
    async with bench_database("pooler") as db:
        user_id = await seed_cached_reader(db)
        await flush_redis()
        direct = product_env(db)
        bouncer = PgBouncer(5432, pool_size=20)
        await bouncer.start()
        try:
            pooled = direct | {
                "WHOOPSYNC_DATABASE_URL": bouncer.url(db),
                "WHOOPSYNC_DATABASE_POOLER": "transaction",
            }
            ways = {
                "direct": direct,
                "direct, pooler setting": direct | {"WHOOPSYNC_DATABASE_POOLER": "transaction"},
                "through PgBouncer": pooled,
            }
            token = await dev_token(direct, user_id)
            with cluster() as procs:
                apis = {
                    name: procs.whoop_sync(f"api {name}", "api", env) for name, env in ways.items()
                }
                for api in apis.values():
                    await wait_http(api)
                for _ in range(opts.rounds):
                    for name, api in apis.items():
                        env = {"BENCH_AUTH": token}
                        url = api.url + PATH
                        await run_wrk(url, "get.lua", opts.warmup_seconds, opts.connections, env)
                        result = await run_wrk(
                            url, "get.lua", opts.measure_seconds, opts.connections, env
                        )
                        runs.setdefault(name, []).append(result)
        finally:
            bouncer.stop()
    return {
        name: {
            "rps": statistics.median(r.ok_per_second for r in rs),
            "p50_ms": statistics.median(r.p50_ms for r in rs),
            "p99_ms": statistics.median(r.p99_ms for r in rs),
            "errors": float(sum(r.status_errors + r.socket_errors for r in rs)),
        }
        for name, rs in runs.items()
    }


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    figures = asyncio.run(measure(parser.parse_args().quick))
    base = figures["direct"]["rps"]
    for name, got in figures.items():
        print(
            f"{name:24} {got['rps']:8.0f} req/s ({got['rps'] / base:.2f}x)  "
            f"p50 {got['p50_ms']:6.1f} ms  p99 {got['p99_ms']:6.1f} ms  errors {got['errors']:.0f}"
        )


if __name__ == "__main__":
    main()
