"""Several processes of each kind: 1, 2 and 4 worker processes (with 2 api and 2 webhook processes)
against one PostgreSQL and one Redis.

.venv/bin/python -m bench.scaleout [--events 600] [--workers 1,2,4]

For each worker count, a fresh database and simulator: USERS members connected, then `--events`
sleep.updated webhooks for new sleeps sent at once (open loop, split over both webhook processes),
every change pushed to a receiver in this process. Reported per count: events per second (first
send to the last event closed), events processed more than once (sleep fetches at the simulator
beyond one per event), pushes out of order or missing per user, and the WHOOP budget: the
simulator's busiest minute of data calls against WHOOPSYNC_WHOOP_RATE_LIMIT_PER_MINUTE, and its
429 answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import defaultdict
from typing import Any

import asyncpg
import orjson

from bench.connect import connect_users, wait_backfilled
from bench.infra import (
    CLIENT_SECRET,
    bench_database,
    cluster,
    flush_redis,
    free_port,
    plain_dsn,
    product_env,
    wait_alive,
    wait_http,
)
from bench.openloop import Planned, run_open_loop
from bench.scenarios.feed_trouble import Backend
from bench.sim import SimControl, data_calls, product_whoop_env, start_sim
from bench.webhooks import signed
from common.feed.cursor import decode

USERS = 20
BUDGET_PER_MINUTE = 6000  # ours and the simulator's: a limit the run can reach


class Pushes(Backend):
    """The app's backend, keeping each push's user and cursor in arrival order."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.cursors: dict[str, list[int]] = defaultdict(list)


async def _pushes_backend() -> Pushes:
    import socket

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    backend = Pushes(free_port())

    async def push(request: Request) -> Response:
        body = orjson.loads(await request.body())
        backend.cursors[body["user_id"]].append(decode(body["cursor"]))
        return Response(status_code=204)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", backend.port))
    app = Starlette(routes=[Route("/push", push, methods=["POST"])])
    backend.server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    backend.task = asyncio.create_task(backend.server.serve(sockets=[sock]))
    while not backend.server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
        await asyncio.sleep(0.01)
    return backend


async def _wait_closed(dsn: str, count: int, limit: float) -> float:
    """Epoch of the moment every recorded event is closed (or the limit)."""
    deadline = time.monotonic() + limit
    connection = await asyncpg.connect(dsn)
    try:
        while time.monotonic() < deadline:
            row = await connection.fetchrow(
                "SELECT count(*) FILTER (WHERE status <> 'pending') AS closed, count(*) AS n, "
                "max(processed_at) AS last FROM whoop_webhook_event"
            )
            if row["n"] >= count and row["closed"] == row["n"]:
                return float(row["last"].timestamp()) if row["last"] else time.time()
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
    return time.time()


async def _changes(dsn: str) -> dict[str, list[int]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT user_id, seq FROM whoop_change ORDER BY seq")
    finally:
        await connection.close()
    out: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        out[str(row["user_id"])].append(int(row["seq"]))
    return out


async def one_count(workers: int, events: int) -> dict[str, Any]:
    """One measurement with `workers` worker processes."""
    async with bench_database(f"scale{workers}") as db:
        await flush_redis()
        backend = await _pushes_backend()
        try:
            with cluster() as procs:
                sim = await start_sim(
                    procs, users=USERS, days=2, per_minute=BUDGET_PER_MINUTE, per_day=10**8
                )
                api_port = free_port()
                env = product_env(
                    db,
                    whoop_redirect_uri=f"http://127.0.0.1:{api_port}/api/v1/whoop/callback",
                    whoop_rate_limit_per_minute=BUDGET_PER_MINUTE,
                    whoop_rate_limit_per_day=10**8,
                    backfill_days=2,
                    app_webhook_url=backend.url,
                    app_webhook_secret="whsec_MDEyMzQ1Njc4OWFiY2RlZg==",
                ) | product_whoop_env(sim)
                apis = [procs.whoop_sync("api", "api", env, port=api_port)]
                apis.append(procs.whoop_sync("api", "api", env))
                hooks = [procs.whoop_sync("webhook", "webhook", env) for _ in range(2)]
                pool = [
                    procs.whoop_sync("worker", "worker", env, http=False) for _ in range(workers)
                ]
                for proc in (*apis, *hooks):
                    await wait_http(proc)
                for proc in pool:
                    await wait_alive(proc, 1.0)
                ctl = SimControl(sim)
                try:
                    whoop_ids = (await ctl.user_ids())[:USERS]
                    await connect_users(apis[0], [(uuid.uuid4(), w) for w in whoop_ids])
                    await wait_backfilled(plain_dsn(db), len(whoop_ids), 300)
                    await asyncio.sleep(2)
                    records = await asyncio.gather(
                        *(ctl.create(whoop_ids[i % USERS], "sleep") for i in range(events))
                    )
                    before = await ctl.counters()
                    plans: list[list[Planned]] = [[], []]
                    for i, record in enumerate(records):
                        hook = signed(
                            CLIENT_SECRET, int(record["user_id"]), record["id"], "sleep.updated"
                        )
                        plans[i % 2].append(
                            (0.0, "POST", "/webhooks/whoop", hook.headers(), hook.body.decode())
                        )
                    started = time.time()
                    await asyncio.gather(
                        *(
                            run_open_loop(h.url, p, connections=32)
                            for h, p in zip(hooks, plans, strict=True)
                        )
                    )
                    total = await _count_events(plain_dsn(db))
                    last = await _wait_closed(plain_dsn(db), total, 600)
                    await asyncio.sleep(5)  # the last pushes
                    after = await ctl.counters()
                finally:
                    await ctl.aclose()
        finally:
            await backend.stop()
        changes = await _changes(plain_dsn(db))
        twice = await _processed_twice(plain_dsn(db), before, after, events)
    out_of_order = sum(1 for c in backend.cursors.values() if c != sorted(c))
    missing = sum(len(set(seq) - set(backend.cursors.get(u, []))) for u, seq in changes.items())
    return {
        "workers": workers,
        "events": events,
        "events_per_second": round(events / max(0.001, last - started), 1),
        "processed_twice": twice,
        "users_with_pushes_out_of_order": out_of_order,
        "pushes_missing": missing,
        "sim_429": int(after.get("rate_limited", 0)),
        "sim_data_calls": data_calls(after) - data_calls(before),
        "budget_per_minute": BUDGET_PER_MINUTE,
    }


async def _count_events(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM whoop_webhook_event"))
    finally:
        await connection.close()


async def _processed_twice(
    dsn: str, before: dict[str, Any], after: dict[str, Any], events: int
) -> int:
    """Events whose sleep WHOOP was asked for more than once (one fetch each when processed once)."""
    by_before: dict[str, int] = before.get("by_endpoint", {})
    by_after: dict[str, int] = after.get("by_endpoint", {})
    fetched = sum(
        n - by_before.get(name, 0)
        for name, n in by_after.items()
        if name.startswith("GET /v2/activity/sleep/")
    )
    return max(0, fetched - events)


def main() -> None:
    """Run each worker count and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    rows = []
    for count in (int(n) for n in args.workers.split(",")):
        rows.append(asyncio.run(one_count(count, args.events)))
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    main()
