"""`make soak`: 10,000 webhooks at a steady rate over real HTTP into the production shape (separate
webhook, api and worker processes on private PostgreSQL and Redis servers), while PostgreSQL is
restarted, Redis is restarted and the worker is SIGKILLed and replaced. Then the kill storm: a
worker SIGKILLed 1 s into a storm of 200 `workout.updated` and another started; every workout must
be readable from the cache within 15 s of the first webhook (the dead worker's events come back
when their leases, renewed every third of INBOX_LEASE_SECONDS, run out).

Reports webhooks answered 204 / redelivered / lost, records readable at the end against expected,
duplicate fetches, and the recovery time of each fault: from the service being back (or the new
worker started) to the first webhook answered 204 and to the first event processed after it.

.venv/bin/python -m bench.soak [--webhooks N] [--rate R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.report import RESULTS_DIR
from tests.faults.cluster import Cluster, Deliveries, running_cluster

DRAIN_LIMIT = 900.0  # seconds after the last webhook for every record to be readable
KILL_STORM_GOAL = 15.0  # seconds from the first webhook to every workout readable
# The inbox's production timings (the drills shrink them): a job lost with the killed worker, or
# a hand-off lost with Redis, waits for its lease and the next sweep.
PRODUCTION = {"inbox_sweep_seconds": "60", "inbox_lease_seconds": "6", "retry_backoff_scale": "1"}
RECOVERY_GOAL = 10.0  # seconds from a fault's end to the next 204 and the next event processed


async def _done_count(cluster: Cluster) -> int:
    with_retry: int | None = None
    try:
        connection = await asyncpg.connect(cluster.pg.dsn, timeout=2)
        try:
            with_retry = await connection.fetchval(
                "SELECT count(*) FROM whoop_webhook_event WHERE status = 'done'"
            )
        finally:
            await connection.close()
    except (OSError, asyncpg.PostgresError):
        return -1
    return int(with_retry or 0)


async def _recovery(cluster: Cluster, delivered: Deliveries, back_at: float) -> dict[str, float]:
    """Seconds from `back_at` to the next 204 and to the next event closed done."""
    answered, done = delivered.answered, await _done_count(cluster)
    first_204: float | None = None
    first_done: float | None = None
    while time.monotonic() - back_at < 120 and (first_204 is None or first_done is None):
        if first_204 is None and delivered.answered > answered:
            first_204 = time.monotonic() - back_at
        if first_done is None and await _done_count(cluster) > max(done, 0):
            first_done = time.monotonic() - back_at
        await asyncio.sleep(0.1)
    return {
        "to_first_204_s": round(first_204 if first_204 is not None else -1, 2),
        "to_first_processed_s": round(first_done if first_done is not None else -1, 2),
    }


async def _faults(cluster: Cluster, delivered: Deliveries, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    await asyncio.sleep(seconds * 0.2)
    cluster.pg.stop()
    await asyncio.sleep(3.0)
    await cluster.pg.start()
    out["postgres_restart"] = await _recovery(cluster, delivered, time.monotonic())
    await asyncio.sleep(max(0.0, seconds * 0.25))
    cluster.redis.stop()
    await asyncio.sleep(5.0)
    await cluster.redis.start()
    out["redis_restart"] = await _recovery(cluster, delivered, time.monotonic())
    await asyncio.sleep(max(0.0, seconds * 0.2))
    cluster.worker.kill()
    cluster.start_worker()
    out["worker_sigkill"] = await _recovery(cluster, delivered, time.monotonic())
    return out


async def _readable(cluster: Cluster, ids: list[str]) -> int:
    connection = await asyncpg.connect(cluster.pg.dsn)
    try:
        found = await connection.fetchval(
            "SELECT count(*) FROM whoop_sleep WHERE id = ANY($1::uuid[])", ids
        )
    finally:
        await connection.close()
    return int(found or 0)


async def soak(webhooks: int, rate: float) -> dict[str, Any]:
    """Run the soak; its figures."""
    with tempfile.TemporaryDirectory(prefix="whoopsync-soak-") as logs:
        async with running_cluster(Path(logs), members=10, **PRODUCTION) as cluster:
            records = await cluster.new_sleeps(webhooks)
            ids = [r["id"] for r in records]
            fetches_before = await cluster.fetches()
            delivered = Deliveries()
            seconds = webhooks / rate
            began = time.monotonic()
            storm = asyncio.ensure_future(
                cluster.deliver(records, rate, window=seconds + 300, out=delivered)
            )
            faults = await _faults(cluster, delivered, seconds)
            await storm
            sent_s = time.monotonic() - began
            deadline = time.monotonic() + DRAIN_LIMIT
            readable = await _readable(cluster, ids)
            while readable < len(ids) and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                readable = await _readable(cluster, ids)
            drained_s = time.monotonic() - began
            fetches = await cluster.fetches() - fetches_before
            events = await cluster.events()
    return {
        "webhooks": webhooks,
        "rate_per_s": rate,
        "answered_204": delivered.answered,
        "redelivered": delivered.redelivered,
        "lost": delivered.lost,
        "answers": dict(delivered.statuses),
        "readable_at_end": readable,
        "expected": len(ids),
        "events_done": sum(e["status"] == "done" for e in events),
        "events_failed": sum(e["status"] == "failed" for e in events),
        "sleep_fetches": fetches,
        "duplicate_fetches": fetches - len(ids),
        "faults": faults,
        "sending_s": round(sent_s, 1),
        "all_readable_after_s": round(drained_s, 1),
    }


async def kill_storm(workouts: int = 200, rate: float = 100.0) -> dict[str, Any]:
    """A worker SIGKILLed 1 s into a storm of `workouts` `workout.updated`, another started: how
    long from the first webhook until every workout is readable from the cache."""
    with tempfile.TemporaryDirectory(prefix="whoopsync-kill-") as logs:
        # Workouts are read from the cache while their events run (no read refreshes them).
        settings = PRODUCTION | {"threshold_workout_seconds": "86400"}
        async with running_cluster(Path(logs), members=10, **settings) as cluster:
            records = await cluster.new_records(workouts, "workout")
            ids = {r["id"] for r in records}
            began = time.monotonic()
            storm = asyncio.ensure_future(
                cluster.deliver(records, rate, event_type="workout.updated")
            )
            await asyncio.sleep(1.0)
            cluster.worker.kill()
            cluster.start_worker()
            readable = await cluster.readable_within(ids, 120, kind="workout")
            readable_s = time.monotonic() - began
            delivered = await storm
            events = await cluster.events()
    return {
        "workouts": workouts,
        "rate_per_s": rate,
        "answered_204": delivered.answered,
        "lost": delivered.lost,
        "all_readable": readable,
        "all_readable_after_first_webhook_s": round(readable_s, 1),
        "events_retried": sum(e["attempts"] > 1 for e in events),
        "goal_s": KILL_STORM_GOAL,
    }


def main() -> int:
    """Run the soak, print and write its figures (bench/results/soak.json)."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--webhooks", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=25.0)
    parser.add_argument(
        "--kill-storm", action="store_true", help="run the kill storm alone (about a minute)"
    )
    args = parser.parse_args()
    # SIGTERM stops the run as Ctrl-C does: the private servers and processes are stopped too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.kill_storm:
        storm = asyncio.run(kill_storm())
        print(json.dumps(storm, indent=2))
        return 0 if storm["all_readable_after_first_webhook_s"] < KILL_STORM_GOAL else 1
    figures = asyncio.run(soak(args.webhooks, args.rate))
    figures["kill_storm"] = storm = asyncio.run(kill_storm())
    text = json.dumps(figures, indent=2)
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "soak.json").write_text(text + "\n")
    recoveries = [seconds for fault in figures["faults"].values() for seconds in fault.values()]
    ok = (
        figures["lost"] == 0
        and figures["readable_at_end"] == figures["expected"]
        and figures["events_failed"] == 0
        and all(0 <= seconds < RECOVERY_GOAL for seconds in recoveries)
        and storm["all_readable"]
        and storm["all_readable_after_first_webhook_s"] < KILL_STORM_GOAL
    )
    print(
        "goal met: 0 lost, all readable, none failed, each recovery under 10 s, the kill storm"
        " readable within 15 s"
        if ok
        else "GOAL MISSED: see the figures above"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
