"""The change feed in `serve`: a user's backfill shows in /changes, and a webhook's new sleep
reaches a live /events reader, woken in-process (SQLite) or through Redis (PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from services.api.routes import feed as feed_routes
from tests.services.api.test_events import EventReader
from tests.services.commands.test_serve import Served, eventually, served

__all__ = ["served"]


async def test_a_webhooks_new_sleep_reaches_the_change_feed_and_a_live_reader(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_routes, "HEARTBEAT", 3600.0)  # only a wake-up delivers in time
    auth = await served.connect(10003)
    base = f"{served.base}/api/v1/smart"
    backfilled: dict[str, Any] = {}

    async def backfill_seen() -> bool:
        # The backfill runs as a job: its sleeps arrive after the connect.
        backfilled.update((await served.http.get(f"{base}/changes?limit=500", headers=auth)).json())
        return any(c["data_type"] == "sleep" for c in backfilled["changes"])

    await eventually(backfill_seen)
    # The link comes first, then the backfill's records (and, once it ends, its completion).
    actions = [c["action"] for c in backfilled["changes"]]
    assert actions[0] == "connection.created"
    assert set(actions[1:]) <= {"upserted", "backfill.completed"}
    assert "upserted" in actions
    async with served.http.stream("GET", f"{base}/events", headers=auth) as stream:
        assert stream.status_code == 200
        step = await served.http.post(
            f"{served.sim.base_url}/_sim/scenario/step",
            json={"user_id": 10003, "action": "new_sleep"},
        )
        new_sleep = next(
            c["id"] for c in step.json()["outcomes"][0]["changed"] if c["kind"] == "sleep"
        )
        reader = EventReader(stream)
        while True:
            event = (await reader.take(1))[0]
            change = orjson.loads(event["data"])
            if event["event"] == "sleep.upserted" and change["id"] == new_sleep:
                break
    assert change["record"]["id"] == new_sleep
    assert uuid.UUID(change["id"])
    later = (
        await served.http.get(
            f"{base}/changes", params={"cursor": backfilled["next_cursor"]}, headers=auth
        )
    ).json()
    assert new_sleep in {c["id"] for c in later["changes"]}
