"""7. Change feed: change committed -> push received by the app's backend, and -> SSE event
received by a live reader, p50 and p99, at 10 and at 100 changes/s; api and worker processes on
PostgreSQL + Redis, the writer and both receivers in this process."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.infra import (
    CLIENT_ID,
    CLIENT_SECRET,
    JWT_SECRET,
    REDIS_URL,
    TOKEN_KEY,
    Proc,
    asyncpg_url,
    bench_database,
    cluster,
    flush_redis,
    free_port,
    product_env,
    wait_alive,
    wait_http,
)
from bench.options import Options
from bench.result import Row, ScenarioResult
from bench.scenarios import feed_trouble
from bench.scenarios.common import info
from bench.stats import summarize_ms
from common.auth import mint_token
from common.config import Settings
from common.db.repositories import RecordRepository
from common.queue import ArqQueue
from common.sync.context import SyncContext, build_context
from common.types import DataType

USERS = 100
# Goals at 100 changes/s (issue 25): p99 of commit -> push received, and of commit -> SSE event.
GOALS_MS = {"push": 500.0, "sse": 250.0}
RATES = (10, 100)
SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


class Arrivals:
    """First arrival (epoch s) of each record id, by channel."""

    def __init__(self) -> None:
        self.push: dict[str, float] = {}
        self.sse: dict[str, float] = {}
        self.bad_signatures = 0


@contextlib.asynccontextmanager
async def receiver(arrivals: Arrivals) -> AsyncIterator[str]:
    """The app's backend: verifies each push with standardwebhooks and notes its record."""
    hook = Webhook(SECRET)

    async def push(request: Request) -> Response:
        body = await request.body()
        try:
            payload = hook.verify(body, dict(request.headers))
        except Exception:
            arrivals.bad_signatures += 1
            return Response(status_code=400)
        arrivals.push.setdefault(payload["record"]["id"], time.time())
        return Response(status_code=204)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    app = Starlette(routes=[Route("/push", push, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/push"
    finally:
        server.should_exit = True
        await task


async def listen(api: str, token: str, arrivals: Arrivals, ready: asyncio.Event) -> None:
    """One live reader of /events; notes the arrival of each record."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as http,
        http.stream("GET", f"{api}/api/v1/smart/events", headers=headers) as stream,
    ):
        ready.set()
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                change = orjson.loads(line[5:])
                arrivals.sse.setdefault(change["record"]["id"], time.time())


def workout(whoop_user_id: int, n: int) -> dict[str, Any]:
    """A WHOOP v2 workout object."""
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n)
    end = start + timedelta(minutes=30)
    stamp = end.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "id": str(uuid.uuid4()),
        "user_id": whoop_user_id,
        "created_at": stamp,
        "updated_at": stamp,
        "start": start.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "end": stamp,
        "timezone_offset": "+00:00",
        "sport_name": "running",
        "score_state": "PENDING_SCORE",
    }


async def _one_rate(
    sync: SyncContext,
    users: list[uuid.UUID],
    arrivals: Arrivals,
    rate: int,
    seconds: float,
    servers: dict[str, Proc],
) -> dict[str, object]:
    count = int(rate * seconds)
    cpu = {name: proc.cpu_seconds() for name, proc in servers.items()}
    committed: dict[str, float] = {}

    async def write(n: int) -> None:
        obj = workout(1000 + n % len(users), n)
        async with sync.session_factory() as session:
            await RecordRepository(session, DataType.WORKOUT).upsert(users[n % len(users)], [obj])
            await session.commit()
        committed[obj["id"]] = time.time()

    started = time.monotonic()
    tasks = []
    for n in range(count):
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        tasks.append(asyncio.create_task(write(n)))
    await asyncio.gather(*tasks)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (  # noqa: ASYNC110 - arrivals come from other tasks
        set(committed) <= set(arrivals.push) and set(committed) <= set(arrivals.sse)
    ):
        await asyncio.sleep(0.05)
    cpu_ms = {
        name: round((proc.cpu_seconds() - cpu[name]) * 1000 / count, 2)
        for name, proc in servers.items()
    }
    push = [arrivals.push[i] - t for i, t in committed.items() if i in arrivals.push]
    sse = [arrivals.sse[i] - t for i, t in committed.items() if i in arrivals.sse]
    return {
        "rate": rate,
        "changes": count,
        "push": summarize_ms(push),
        "sse": summarize_ms(sse),
        "push_missing_after_60s": count - len(push),
        "sse_missing_after_60s": count - len(sse),
        "cpu_ms_per_change": cpu_ms,
    }


async def run(opts: Options) -> ScenarioResult:
    """Start api and worker, open a live reader per user, write changes on schedule, time them."""
    result = ScenarioResult(7, "Change feed")
    rates: dict[str, dict[str, Any]] = {}
    arrivals = Arrivals()
    async with bench_database("feed") as db, receiver(arrivals) as push_url:
        await flush_redis()
        env = product_env(db, app_webhook_url=push_url, app_webhook_secret=SECRET)
        settings = Settings(
            database_url=asyncpg_url(db),
            redis_url=REDIS_URL,
            whoop_client_id=CLIENT_ID,
            whoop_client_secret=CLIENT_SECRET,
            whoop_redirect_uri="http://127.0.0.1:9/api/v1/whoop/callback",
            token_encryption_key=TOKEN_KEY,
            app_webhook_url=push_url,
            app_webhook_secret=SECRET,
        )
        with cluster() as procs:
            api = procs.whoop_sync("whoop-sync api", "api", env, port=free_port())
            worker = procs.whoop_sync("whoop-sync worker", "worker", env, http=False)
            await wait_http(api)
            await wait_alive(worker, 1.0)
            users = [uuid.uuid4() for _ in range(USERS)]
            tokens = [mint_token(u, JWT_SECRET) for u in users]
            readies = [asyncio.Event() for _ in users]
            readers = [
                asyncio.create_task(listen(api.url, t, arrivals, r))
                for t, r in zip(tokens, readies, strict=True)
            ]
            sync = await build_context(settings)
            sync.feed.use_queue(ArqQueue(sync.redis))  # type: ignore[arg-type]
            try:
                await asyncio.gather(*(r.wait() for r in readies))
                await asyncio.sleep(1.0)
                for rate in RATES:
                    rates[str(rate)] = await _one_rate(
                        sync,
                        users,
                        arrivals,
                        rate,
                        opts.freshness_seconds,
                        {"worker": worker, "api": api},
                    )
            finally:
                for task in readers:
                    task.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
                await sync.close()
        result.memory_mb = {p.name: p.peak_rss_mb for p in procs.procs}
    await flush_redis()
    result.details = {"rates": rates, "users": USERS, "bad_signatures": arrivals.bad_signatures}
    for rate in RATES:
        got = rates[str(rate)]
        for channel, label in (("push", "push received"), ("sse", "SSE event received")):
            missing = int(got[f"{channel}_missing_after_60s"])
            note = f"{missing} missing after 60 s" if missing else ""
            for q in ("p50", "p99"):
                value = float(got[channel][f"{q}_ms"])
                metric = f"commit -> {label} at {rate}/s: {q}"
                goal = GOALS_MS[channel] if (rate, q) == (100, "p99") else None
                if goal is None:
                    result.rows.append(info(metric, value, None, "ms", note))
                    continue
                ok = value < goal and not missing
                result.rows.append(Row(metric, value, None, "ms", None, f"< {goal:g} ms", ok, note))
        for name, ms in got["cpu_ms_per_change"].items():
            doing = "pushes" if name == "worker" else "SSE events"
            result.rows.append(info(f"{name} CPU per change at {rate}/s ({doing})", ms, None, "ms"))
    if os.environ.get("WHOOPSYNC_BENCH_FEED_TROUBLE", "1") != "0":
        try:
            rows, details = await feed_trouble.measure(opts)
        except Exception as exc:  # the rates stand; say why the trouble rows are missing
            result.notes.append(f"trouble rows not measured: {str(exc)[:200]}")
        else:
            result.rows.extend(rows)
            result.details["trouble"] = details
    result.notes.append(
        f"{USERS} users, one live /events reader each; workouts upserted open-loop for "
        f"{opts.freshness_seconds:g}s per rate by a writer process of their own (its commit drains "
        "the outbox, publishes the wake-up on Redis and enqueues the push job for the worker); "
        "lag = first arrival at the reader or the receiver (signature verified) minus the commit"
    )
    return result
