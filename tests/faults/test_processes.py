"""The product's own processes (webhook, api, worker) against private PostgreSQL and Redis that
the tests stop and start: each fault only delays events, and every process recovers by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.faults.cluster import Cluster, running_cluster

pytestmark = [pytest.mark.timeout(240), pytest.mark.drills]


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """The production shape on private servers, eight members connected, shared by the drills
    (each sends webhooks for records of its own, and judges only those)."""
    # A sweep interval longer than the drills' limits: recovering from a restart must not wait
    # for it (the jobs retry their claims; what the queue refused goes at the next 5 s tick).
    drills = tmp_path_factory.mktemp("drills")
    async with running_cluster(drills, members=8, inbox_sweep_seconds="20") as running:
        yield running


async def _why(cluster: Cluster, records: list[dict[str, Any]]) -> str:
    events = await cluster.events(records)
    states = sorted({(e["status"], e["attempts"], (e["last_error"] or "")[:80]) for e in events})
    return f"{states[:10]}\nworker:\n{cluster.worker.log_tail(15)}"


def _pids(cluster: Cluster) -> list[int]:
    return [p.popen.pid for p in (cluster.webhook, cluster.api, cluster.worker) if p.alive]


async def test_a_postgres_restart_during_a_storm_loses_no_webhook(cluster: Cluster) -> None:
    records = await cluster.new_sleeps(60)
    before = _pids(cluster)
    delivered, reads, back = await cluster.storm_across_outage(records, 20, cluster.pg, down=4.0)
    assert (delivered.answered, delivered.lost) == (60, 0)
    assert delivered.statuses["503"] > 0  # the outage was seen, and answered as SPEC says
    # Every record readable from the cache within 10 s of PostgreSQL being back.
    within = back + 10 - time.monotonic()
    assert await cluster.readable_within({r["id"] for r in records}, within), await _why(
        cluster, records
    )
    assert await cluster.ready(cluster.api, 10)
    assert await cluster.ready(cluster.webhook, 10)
    assert _pids(cluster) == before  # the same processes throughout
    assert set(reads.statuses) <= {"200 cache", "503 unavailable"}, reads.statuses
    assert reads.statuses["503 unavailable"] > 0
    # An event whose close the restart broke after its record was written is closed by its job's
    # next try (else by the sweep, 20 s): it settles later than its record is readable.
    assert await cluster.settled_within(records, 30), await _why(cluster, records)
    assert {e["status"] for e in await cluster.events(records)} == {"done"}


async def test_redis_away_for_ten_seconds_loses_no_webhook(cluster: Cluster) -> None:
    records = await cluster.new_sleeps(40)
    worker = cluster.worker.popen.pid
    delivered, reads, back = await cluster.storm_across_outage(records, 4, cluster.redis, down=10.0)
    assert (delivered.answered, delivered.redelivered, delivered.lost) == (40, 0, 0)
    assert cluster.worker.alive
    assert cluster.worker.popen.pid == worker
    # Every record readable within 30 s of Redis being back.
    within = back + 30 - time.monotonic()
    assert await cluster.readable_within({r["id"] for r in records}, within), await _why(
        cluster, records
    )
    # From the cache, or refreshed at WHOOP when a refresh was due: never an error.
    assert {status.split()[0] for status in reads.statuses} == {"200"}, reads.statuses
    assert await cluster.settled_within(records, 30), await _why(cluster, records)
    assert {e["status"] for e in await cluster.events(records)} == {"done"}, await _why(
        cluster, records
    )


async def test_a_worker_killed_mid_storm_leaves_every_event_processed_once(
    cluster: Cluster,
) -> None:
    records = await cluster.new_sleeps(100)
    fetches_before = await cluster.fetches()
    storm = asyncio.ensure_future(cluster.deliver(records, rate=50))
    await asyncio.sleep(1.0)
    cluster.worker.kill()
    cluster.start_worker()
    delivered = await storm
    assert (delivered.answered, delivered.lost) == (100, 0)
    assert await cluster.readable_within({r["id"] for r in records}, 60), await _why(
        cluster, records
    )
    assert await cluster.settled_within(records, 60), await _why(cluster, records)
    events = await cluster.events(records)
    assert len(events) == 100
    assert {e["status"] for e in events} == {"done"}
    # One job per event: only the events the killed worker held were tried again (its
    # twenty job slots at most), and each record was fetched once per try, no more.
    retried = [e for e in events if e["attempts"] > 1]
    assert len(retried) <= 20
    fetches = await cluster.fetches() - fetches_before
    assert 100 <= fetches <= sum(e["attempts"] for e in events)
