"""The claim reads the cache (PostgreSQL): what it read serves the event's fetch phase only while
no other holder of the user's lock came first; on both backends, events of one user handled at
the same moment still share their fetches."""

from __future__ import annotations

import asyncio
import uuid

from common.db.repositories.event_cache import event_cache
from common.sync.inbox import Inbox
from common.sync.jobs import process_webhook_event
from common.sync.jobs.backfill import run_backfill
from tests.common.sync.harness import Pipeline

SLEEP_BY_ID = "GET /v2/activity/sleep/{sleepId}"


async def _new_night(pipe: Pipeline) -> tuple[str, list[int]]:
    """A backfilled member's new night, its `sleep.updated` and `recovery.updated` recorded and
    not yet handled: the sleep's id and the two events' ids."""
    assert all(r.ok for r in await run_backfill(pipe.ctx, pipe.users[10001]))
    pipe.use_queue(None)
    [outcome] = pipe.sim.sim.step(10001, "new_sleep")
    assert [t for t, _ in outcome.events] == ["sleep.updated", "recovery.updated"]
    async with asyncio.timeout(20):
        await pipe.sim.sim.webhooks.wait_idle()
    events = await pipe.events()
    assert sorted(e.event_type for e in events) == ["recovery.updated", "sleep.updated"]
    return outcome.events[0][1], [e.id for e in events]


async def test_events_handled_at_once_share_their_fetches(pipe: Pipeline) -> None:
    _, event_ids = await _new_night(pipe)
    # WHOOP answers slowly: whichever job takes the user's lock first still holds it when the
    # other has claimed its event, so that the other's claim saw the cache before the first wrote.
    slow = await pipe.http.post(
        f"{pipe.sim.base_url}/_sim/faults",
        json={"path": "*/v2/activity/sleep/*", "method": "GET", "latency_ms": 400},
    )
    assert slow.status_code < 300, slow.text
    pipe.sim.sim.reset_counters()
    done = await asyncio.gather(*(process_webhook_event(pipe.job_ctx(None), i) for i in event_ids))
    assert done == ["done", "done"]
    # The sleep once, the new night's cycle page once, the recovery once: the job that waited
    # looked at the cache again (with the claim's view it would fetch the sleep and the page again).
    assert pipe.calls(SLEEP_BY_ID) == 1
    assert pipe.calls("GET /v2/cycle") == 1
    assert pipe.calls("GET /v2/cycle/{cycleId}/recovery") == 1
    assert pipe.sim.sim.counters.total == 3


async def test_the_claim_reads_the_cache_as_a_look_would(pipe: Pipeline, backend: str) -> None:
    sleep_id, event_ids = await _new_night(pipe)
    for event_id in event_ids:
        assert await process_webhook_event(pipe.job_ctx(None), event_id) == "done"
    key, user_id = uuid.UUID(sleep_id), pipe.users[10001]
    for spelling, reads in ((sleep_id, True), (sleep_id.upper(), True), (key.hex, False)):
        sent = await pipe.post(
            {"user_id": 10001, "id": spelling, "type": "recovery.updated", "trace_id": spelling}
        )
        assert sent.status_code == 204, sent.text
        [event] = [e for e in await pipe.events() if e.trace_id == spelling]
        async with pipe.ctx.lookups() as session:
            claimed = await Inbox(session).claim(event.id, "test", 30)
            await session.commit()
            looked = await event_cache(session, user_id, key)
        assert claimed is not None
        if backend == "postgresql" and reads:
            assert claimed.cache == looked
            assert claimed.cache is not None
            assert claimed.cache.sleep is not None
            assert claimed.cache.sleep["id"] == sleep_id
        else:  # SQLite reads it in the job; another spelling of the id is looked at there too
            assert claimed.cache is None
