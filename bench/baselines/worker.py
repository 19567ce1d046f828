"""Baseline of the worker: the naive design, a minimal arq worker that makes the same WHOOP calls
as whoop-sync for an event and writes each record with one INSERT … ON CONFLICT into a table of
its own.

Per event it GETs the record by id (a recovery: its sleep, for the cycle id, then the cycle's
recovery); a night's sleep (not a nap) it has not stored before also costs one page of the newest
cycles, as whoop-sync does. Nothing else: no inbox, no sync log, no change feed, no per-user
lock, no token refresh, no rate limit, no retries but arq's own.

Configured by BENCH_PG_DSN, BENCH_REDIS_URL, BENCH_QUEUE (the arq queue it reads), BENCH_WHOOP_API
(WHOOP's data API, the simulator's `/developer`) and BENCH_TOKENS (a JSON object: WHOOP user id ->
access token). Run with `python -m bench.baselines.worker`; jobs are `handle(whoop_user_id,
event_type, record_id)`.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import asyncpg
import httpx
import uvloop
from arq.connections import RedisSettings
from arq.worker import run_worker

PAGE_SIZE = 25  # WHOOP's largest page, what whoop-sync asks for
CREATE = """CREATE TABLE IF NOT EXISTS bench_baseline_record (
    kind text NOT NULL,
    id text NOT NULL,
    whoop_user_id bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    data jsonb NOT NULL,
    PRIMARY KEY (kind, id)
)"""
UPSERT = """INSERT INTO bench_baseline_record (kind, id, whoop_user_id, updated_at, data)
VALUES ($1, $2, $3, $4::text::timestamptz, $5::jsonb)
ON CONFLICT (kind, id) DO UPDATE SET updated_at = EXCLUDED.updated_at, data = EXCLUDED.data
WHERE bench_baseline_record.updated_at < EXCLUDED.updated_at"""
STORED = "SELECT 1 FROM bench_baseline_record WHERE kind = 'sleep' AND id = $1"
BY_ID = {"sleep": "/v2/activity/sleep/{}", "workout": "/v2/activity/workout/{}"}


async def startup(ctx: dict[str, Any]) -> None:
    """A connection pool as large as the job slots, the table, and the HTTP client."""
    ctx["pool"] = await asyncpg.create_pool(os.environ["BENCH_PG_DSN"], min_size=2, max_size=20)
    await ctx["pool"].execute(CREATE)
    ctx["http"] = httpx.AsyncClient(
        base_url=os.environ["BENCH_WHOOP_API"], timeout=httpx.Timeout(10.0, connect=5.0)
    )
    ctx["tokens"] = {int(k): v for k, v in json.loads(os.environ["BENCH_TOKENS"]).items()}


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close what startup opened."""
    await ctx["http"].aclose()
    await ctx["pool"].close()


async def _get(ctx: dict[str, Any], whoop_user_id: int, path: str, **params: Any) -> Any:
    headers = {"Authorization": f"Bearer {ctx['tokens'][whoop_user_id]}"}
    answer = await ctx["http"].get(path, params=params, headers=headers)
    answer.raise_for_status()
    return answer.json()


async def _upsert(
    ctx: dict[str, Any], whoop_user_id: int, kind: str, record: dict[str, Any]
) -> None:
    key = record["cycle_id"] if kind == "recovery" else record["id"]
    args = (kind, str(key), whoop_user_id, record["updated_at"], json.dumps(record))
    await ctx["pool"].execute(UPSERT, *args)


async def handle(ctx: dict[str, Any], whoop_user_id: int, event_type: str, record_id: str) -> int:
    """One `*.updated` event: fetch, then write; how many records were written."""
    kind = event_type.split(".")[0]
    if kind == "workout":
        records = [("workout", await _get(ctx, whoop_user_id, BY_ID["workout"].format(record_id)))]
    else:
        sleep = await _get(ctx, whoop_user_id, BY_ID["sleep"].format(record_id))
        records = [("sleep", sleep)]
        if not sleep.get("nap") and await ctx["pool"].fetchval(STORED, record_id) is None:
            page = await _get(ctx, whoop_user_id, "/v2/cycle", limit=PAGE_SIZE)
            records += [("cycle", cycle) for cycle in page["records"]]
        if kind == "recovery":
            path = f"/v2/cycle/{sleep['cycle_id']}/recovery"
            records.append(("recovery", await _get(ctx, whoop_user_id, path)))
    for record_kind, record in records:
        await _upsert(ctx, whoop_user_id, record_kind, record)
    return len(records)


class WorkerSettings:
    """arq settings: whoop-sync's job slots and idle poll, on a queue of its own."""

    functions = (handle,)
    on_startup = startup
    on_shutdown = shutdown
    max_jobs = 20
    poll_delay = 0.05
    queue_name = os.environ.get("BENCH_QUEUE", "bench:baseline")
    redis_settings = RedisSettings.from_dsn(
        os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
    )


if __name__ == "__main__":
    # The same loop as whoop-sync's worker, so that the ratio compares designs, not event loops.
    asyncio.set_event_loop(uvloop.new_event_loop())
    # arq types its settings as a Protocol whose class attributes a plain class does not match.
    run_worker(WorkerSettings)  # type: ignore[arg-type]
