"""The production shape through PgBouncer in transaction mode (WHOOPSYNC_DATABASE_POOLER=transaction):
`migrate`, webhook, api and worker processes (and `serve`) reach a private PostgreSQL only through
a private PgBouncer with four server connections: webhooks, reads, the change feed, pushes in
order, and a PostgreSQL restart behind the bouncer."""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from common.feed.cursor import decode
from tests.common.feed.receiver import Receiver, serve_receiver
from tests.faults.cluster import Cluster, running_cluster
from tests.faults.services import wait_http

pytestmark = [pytest.mark.timeout(240), pytest.mark.drills]

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    """The app's backend, answering 204."""
    async with serve_receiver() as running:
        yield running


@pytest.fixture(scope="module")
async def cluster(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> AsyncIterator[Cluster]:
    """Four members, every process behind PgBouncer, pushes to `receiver`."""
    logs = tmp_path_factory.mktemp("pooled")
    async with running_cluster(
        logs,
        members=4,
        pooled=True,
        inbox_sweep_seconds="20",
        app_webhook_url=receiver.url,
        app_webhook_secret=SECRET,
    ) as running:
        yield running


def _bearer(cluster: Cluster, user_id: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {cluster.token(user_id)}"}


async def _changes(cluster: Cluster, user_id: uuid.UUID) -> list[dict[str, Any]]:
    answer = await cluster.http.get(
        f"{cluster.api.url}/api/v1/smart/changes",
        params={"limit": 500},
        headers=_bearer(cluster, user_id),
    )
    assert answer.status_code == 200, answer.text
    changes: list[dict[str, Any]] = answer.json()["changes"]
    return changes


async def test_migrate_ran_through_the_bouncer(cluster: Cluster) -> None:
    connection = await asyncpg.connect(cluster.pg.dsn)
    try:
        version = await connection.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await connection.close()
    assert version
    assert cluster.bouncer is not None
    assert "login attempt" in cluster.bouncer.log_tail(200)


async def test_webhooks_reads_feed_and_pushes_work_through_the_bouncer(
    cluster: Cluster, receiver: Receiver
) -> None:
    records = await cluster.new_sleeps(40)
    delivered = await cluster.deliver(records, rate=40)
    assert (delivered.answered, delivered.lost) == (40, 0), delivered.statuses
    assert await cluster.readable_within({r["id"] for r in records}, 30), cluster.worker.log_tail()
    assert await cluster.settled_within(records, 30)
    assert {e["status"] for e in await cluster.events(records)} == {"done"}
    by_user: dict[uuid.UUID, set[str]] = defaultdict(set)
    for record in records:
        by_user[cluster.members[int(record["user_id"])]].add(record["id"])
    for user_id, ids in by_user.items():
        changes = await _changes(cluster, user_id)
        assert ids <= {c["id"] for c in changes if c["data_type"] == "sleep"}
        cursors = [decode(c["cursor"]) for c in changes]
        assert cursors == sorted(cursors)
    # Every change is pushed, in order per user, signed.
    wanted = 0
    for user_id in cluster.members.values():
        wanted += len(await _changes(cluster, user_id))
    pushes = [Webhook(SECRET).verify(p.body, p.headers) for p in await receiver.wait_for(wanted)]
    per_user: dict[str, list[int]] = defaultdict(list)
    for push in pushes:
        per_user[push["user_id"]].append(decode(push["cursor"]))
    for user_id in cluster.members.values():
        got = per_user[str(user_id)]
        assert got == sorted(got)
        assert {c["cursor"] for c in await _changes(cluster, user_id)} <= {
            p["cursor"] for p in pushes if p["user_id"] == str(user_id)
        }


async def test_a_postgres_restart_behind_the_bouncer_loses_no_webhook(cluster: Cluster) -> None:
    records = await cluster.new_sleeps(40)
    delivered, reads, back = await cluster.storm_across_outage(records, 20, cluster.pg, down=4.0)
    assert (delivered.answered, delivered.lost) == (40, 0), delivered.statuses
    assert delivered.statuses["503"] > 0  # the outage was seen through the bouncer
    assert set(reads.statuses) <= {"200 cache", "503 unavailable"}, reads.statuses
    assert reads.statuses["503 unavailable"] > 0
    within = back + 20 - time.monotonic()
    assert await cluster.readable_within({r["id"] for r in records}, within), (
        cluster.worker.log_tail()
    )
    assert await cluster.ready(cluster.api, 10)
    assert await cluster.ready(cluster.webhook, 10)
    assert await cluster.settled_within(records, 40), cluster.worker.log_tail()
    assert {e["status"] for e in await cluster.events(records)} == {"done"}


async def test_serve_works_through_the_bouncer(cluster: Cluster) -> None:
    serve = cluster.procs.start("serve", cluster.env | {"WHOOPSYNC_REDIS_URL": ""})
    try:
        await wait_http(serve, "/readyz")
        user_id = next(iter(cluster.members.values()))
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(
                f"{serve.url}/api/v1/smart/sleep",
                params={"limit": 5},
                headers=_bearer(cluster, user_id),
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]
    finally:
        serve.stop()
