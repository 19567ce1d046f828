"""7, trouble rows: bench 3's freshness lag at 10 webhooks/s while every change is pushed to the app's
backend, with the backend healthy, answering after 10 s, and down; and the worker's memory while
the pushes wait. webhook, api and worker processes on PostgreSQL + Redis, the simulator at zero
latency, the backend in this process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.connect import connect_users, wait_backfilled
from bench.infra import (
    bench_database,
    cluster,
    flush_redis,
    free_port,
    plain_dsn,
    product_env,
    start_pipeline,
)
from bench.options import Options
from bench.result import Row
from bench.scenarios.common import info
from bench.scenarios.freshness import _one_rate
from bench.sim import SimControl, product_whoop_env, start_sim

USERS = 20
RATE = 10
SLOW_SECONDS = 10.0
WITHIN = 0.10  # the lag under trouble may exceed the healthy one by this fraction at most


@dataclass
class Backend:
    """The app's backend: answers 204, after `delay` seconds; `stop()` takes it down."""

    port: int
    delay: float = 0.0
    received: int = 0
    server: uvicorn.Server | None = None
    task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Where the pushes go."""
        return f"http://127.0.0.1:{self.port}/push"

    async def start(self) -> None:
        """Listen on `port`."""

        async def push(request: Request) -> Response:
            await request.body()
            self.received += 1
            if self.delay:
                await asyncio.sleep(self.delay)
            return Response(status_code=204)

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        app = Starlette(routes=[Route("/push", push, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=1)
        )
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop listening: every push is refused."""
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            with contextlib.suppress(Exception):
                await self.task
        self.server = self.task = None


@contextlib.asynccontextmanager
async def backend() -> AsyncIterator[Backend]:
    """A running backend, stopped afterwards."""
    running = Backend(free_port())
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def measure(opts: Options) -> tuple[list[Row], dict[str, object]]:
    """Rows and details: freshness lag p50/p99 per backend state, worker RSS before and after."""
    phases: dict[str, dict[str, object]] = {}
    async with bench_database("pushtrouble") as db, backend() as app:
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
                app_webhook_url=app.url,
                app_webhook_secret="whsec_" + "MDEyMzQ1Njc4OWFiY2RlZg==",
            ) | product_whoop_env(sim)
            api, hook, worker = await start_pipeline(procs, env, api_port=api_port)
            ctl = SimControl(sim)
            try:
                whoop_ids = (await ctl.user_ids())[:USERS]
                await connect_users(api, [(uuid.uuid4(), w) for w in whoop_ids])
                await wait_backfilled(plain_dsn(db), len(whoop_ids), 600)
                await asyncio.sleep(2)
                for phase in ("healthy", "slow", "down"):
                    if phase == "slow":
                        app.delay = SLOW_SECONDS
                    if phase == "down":
                        await app.stop()
                    rss_before = worker.sampler.sample() / 2**20
                    got = await _one_rate(
                        procs, ctl, plain_dsn(db), hook.url, whoop_ids, RATE, opts.freshness_seconds
                    )
                    await asyncio.sleep(2)
                    got["worker_rss_before_mb"] = round(rss_before, 1)
                    got["worker_rss_after_mb"] = round(worker.sampler.sample() / 2**20, 1)
                    got["pushes_received_so_far"] = app.received
                    phases[phase] = got
            finally:
                await ctl.aclose()
    return _rows(phases), {"phases": phases, "users": USERS, "rate": RATE}


def _rows(phases: dict[str, dict[str, object]]) -> list[Row]:
    healthy = float(phases["healthy"]["p99_ms"])  # type: ignore[arg-type]
    rows: list[Row] = []
    for phase, label in (
        ("healthy", "backend healthy"),
        ("slow", f"backend answering after {SLOW_SECONDS:g} s"),
        ("down", "backend down"),
    ):
        got = phases[phase]
        p99 = float(got["p99_ms"])  # type: ignore[arg-type]
        rows.append(info(f"freshness at {RATE}/s, {label}: p50", float(got["p50_ms"]), None, "ms"))  # type: ignore[arg-type]
        if phase == "healthy":
            rows.append(info(f"freshness at {RATE}/s, {label}: p99", p99, None, "ms"))
        else:
            limit = healthy * (1 + WITHIN)
            rows.append(
                Row(
                    f"freshness at {RATE}/s, {label}: p99",
                    p99,
                    None,
                    "ms",
                    None,
                    f"<= {limit:.0f} ms (healthy +10%)",
                    p99 <= limit,
                    "",
                )
            )
        before, after = got["worker_rss_before_mb"], got["worker_rss_after_mb"]
        rows.append(
            info(
                f"worker RSS, {label}: after the phase",
                float(after),  # type: ignore[arg-type]
                None,
                "MiB",
                f"{before} MiB before it",
            )
        )
    return rows
