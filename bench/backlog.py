"""One worker against a backlog of events: the events queued while no worker runs, then one worker
started and timed from the first record readable to the last (its start-up left out). The same
records, whoop-sync's worker (the events through `whoop-sync webhook`, the inbox and arq) and the
naive arq worker of bench/baselines/worker.py (its jobs put straight on its queue)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psutil
import redis.asyncio as aioredis
from arq.connections import RedisSettings, create_pool
from arq.constants import health_check_key_suffix

from bench.baselines.worker import CREATE
from bench.infra import CLIENT_SECRET, REDIS_URL, Cluster, Proc, pg_connect
from bench.openloop import Planned, run_open_loop
from bench.sim import SimControl, data_calls
from bench.webhooks import signed

BASELINE_QUEUE = "bench:baseline"
PRODUCT_SQL = "SELECT id FROM whoop_sleep WHERE id = ANY($1::uuid[])"
BASELINE_SQL = "SELECT id FROM bench_baseline_record WHERE kind = 'sleep' AND id = ANY($1::text[])"
SEND_RATE = 1000  # webhooks/s into the product's receiver, far above what one worker carries
LIMIT_S = 300.0  # a drain not finished by then is reported as such


@dataclass
class Drain:
    """What one worker made of a backlog."""

    events: int
    readable: int
    seconds: float  # first record readable -> last
    wall_seconds: float  # worker started -> last record readable
    calls: int  # WHOOP data calls
    cpu_seconds: float = 0.0  # the worker's CPU from the first record readable to the last
    machine_cpu_seconds: float = 0.0  # every process's (simulator, PostgreSQL, Redis …) the same

    @property
    def per_second(self) -> float:
        """Events carried per second once the worker runs."""
        return (self.readable - 1) / self.seconds if self.readable > 1 and self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "events": self.events,
            "readable": self.readable,
            "seconds": round(self.seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "events_per_second": round(self.per_second, 1),
            "whoop_calls_per_event": round(self.calls / self.events, 2) if self.events else None,
            "worker_cpu_ms_per_event": self.cpu_ms_per_event,
            "machine_cpu_ms_per_event": self.machine_cpu_ms_per_event,
        }

    @property
    def machine_cpu_ms_per_event(self) -> float | None:
        """The whole machine's CPU per event carried: what the pipeline costs, all parts."""
        if self.readable <= 1:
            return None
        return round(self.machine_cpu_seconds * 1000 / (self.readable - 1), 2)

    @property
    def cpu_ms_per_event(self) -> float | None:
        """The worker's CPU per event carried (start-up left out)."""
        return (
            round(self.cpu_seconds * 1000 / (self.readable - 1), 2) if self.readable > 1 else None
        )


async def poll_visible(dsn: str, sql: str, ids: list[Any], until: float) -> dict[Any, float]:
    """First moment (epoch s) each id is returned by `sql` (`$1`: the ids), polling every 5 ms."""
    seen: dict[Any, float] = {}
    pending = set(ids)
    conn = await pg_connect(dsn)
    try:
        while pending and time.time() < until:
            rows = await conn.fetch(sql, list(pending))
            now = time.time()
            for row in rows:
                seen[row["id"]] = now
                pending.discard(row["id"])
            await asyncio.sleep(0.005)
    finally:
        await conn.close()
    return seen


async def _timed(
    procs: Cluster,
    start: Callable[[Cluster], Proc],
    ctl: SimControl,
    dsn: str,
    sql: str,
    ids: list[Any],
) -> Drain:
    """Start the worker (`start(procs)`), wait for every id to be readable, stop the worker."""
    before = data_calls(await ctl.counters())
    started = time.time()
    worker = start(procs)
    cpu: list[tuple[float, float]] = []  # (epoch s, the worker's CPU seconds)
    machine: list[tuple[float, float]] = []  # (epoch s, the machine's busy CPU seconds)

    async def sample() -> None:
        while True:
            now, busy = time.time(), psutil.cpu_times()
            cpu.append((now, worker.cpu_seconds()))
            machine.append((now, busy.user + busy.system + busy.nice + busy.softirq + busy.irq))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        seen = await poll_visible(dsn, sql, ids, started + LIMIT_S)
    finally:
        sampler.cancel()
        worker.stop()
    calls = data_calls(await ctl.counters()) - before
    if not seen:
        raise RuntimeError(
            f"{worker.name}: nothing readable within {LIMIT_S:g}s\n{worker.log_tail()}"
        )
    first, last = min(seen.values()), max(seen.values())
    return Drain(
        len(ids),
        len(seen),
        last - first,
        last - started,
        calls,
        _cpu_between(cpu, first, last),
        _cpu_between(machine, first, last),
    )


def _cpu_between(samples: list[tuple[float, float]], first: float, last: float) -> float:
    """CPU seconds used between two moments, from the samples nearest each."""
    if not samples:
        return 0.0

    def at(moment: float) -> float:
        return min(samples, key=lambda s: abs(s[0] - moment))[1]

    return max(0.0, at(last) - at(first))


async def product_drain(
    procs: Cluster,
    env: Mapping[str, str],
    ctl: SimControl,
    dsn: str,
    hook_url: str,
    records: list[dict[str, Any]],
) -> Drain:
    """whoop-sync: a `sleep.updated` webhook per record recorded and queued by the receiver while
    no worker runs, then one `whoop-sync worker`."""
    plan: list[Planned] = []
    for n, record in enumerate(records):
        hook = signed(CLIENT_SECRET, int(record["user_id"]), record["id"], "sleep.updated")
        plan.append((n / SEND_RATE, "POST", "/webhooks/whoop", hook.headers(), hook.body.decode()))
    sent = await run_open_loop(hook_url, plan, connections=32)
    if sent.statuses() != {"204": len(records)}:
        raise RuntimeError(f"the receiver did not take every webhook: {sent.statuses()}")
    ids = [uuid.UUID(record["id"]) for record in records]
    return await _timed(
        procs,
        lambda p: p.whoop_sync("whoop-sync worker", "worker", env, http=False),
        ctl,
        dsn,
        PRODUCT_SQL,
        ids,
    )


async def baseline_table(dsn: str) -> None:
    """The naive worker's table, made before its start-up would make it: it is polled at once."""
    conn = await pg_connect(dsn)
    try:
        await conn.execute(CREATE)
    finally:
        await conn.close()


def start_baseline_worker(procs: Cluster, env: Mapping[str, str]) -> Proc:
    """The naive worker as a process of its own."""
    return procs.start("worker baseline", [sys.executable, "-m", "bench.baselines.worker"], env)


async def baseline_ready(worker: Proc, limit: float = 30.0) -> None:
    """Wait until the naive worker polls its queue: arq writes its health-check key on its first
    poll (the key is gone after `flush_redis`)."""
    key = BASELINE_QUEUE + health_check_key_suffix
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        deadline = time.monotonic() + limit
        while not await client.exists(key):
            if worker.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{worker.name} is not polling its queue\n{worker.log_tail()}")
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def baseline_drain(
    procs: Cluster, env: Mapping[str, str], ctl: SimControl, dsn: str, records: list[dict[str, Any]]
) -> Drain:
    """The naive worker: one arq job per record on its queue, then the worker."""
    await baseline_table(dsn)
    pool = await create_pool(RedisSettings.from_dsn(REDIS_URL))
    try:
        for record in records:
            args = (int(record["user_id"]), "sleep.updated", record["id"])
            await pool.enqueue_job("handle", *args, _queue_name=BASELINE_QUEUE)
    finally:
        await pool.aclose()
    ids = [record["id"] for record in records]
    return await _timed(procs, lambda p: start_baseline_worker(p, env), ctl, dsn, BASELINE_SQL, ids)


def baseline_env(dsn: str, whoop_api: str, tokens: Mapping[int, str]) -> dict[str, str]:
    """The naive worker's environment."""
    return {
        "BENCH_PG_DSN": dsn,
        "BENCH_REDIS_URL": REDIS_URL,
        "BENCH_QUEUE": BASELINE_QUEUE,
        "BENCH_WHOOP_API": whoop_api,
        "BENCH_TOKENS": json.dumps({str(k): v for k, v in tokens.items()}),
    }
