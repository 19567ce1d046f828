"""Pushes to the app's backend: signed per Standard Webhooks, in order per user, retried until a
2xx, every attempt recorded; on both backends through the in-process queue."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from common.db.models import AppDelivery, AppDeliveryAttempt
from common.db.repositories import RecordRepository
from common.feed.cursor import decode
from common.queue import InProcessQueue
from common.sync.context import SyncContext, build_context
from common.sync.jobs import JOBS
from common.types import DataType
from tests.common.db import samples
from tests.common.feed.receiver import Push, Receiver, serve_receiver
from tests.common.sync.harness import make_settings

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


@dataclass
class Pushing:
    """A process context whose changes are pushed to `receiver`."""

    sync: SyncContext
    receiver: Receiver


@pytest.fixture
async def pushing(backend: str, pg_url: str, sqlite_url: str) -> AsyncIterator[Pushing]:
    async with serve_receiver() as receiver:
        settings = make_settings(
            pg_url if backend == "postgresql" else sqlite_url,
            None,
            "http://127.0.0.1:9",
            app_webhook_url=receiver.url,
            app_webhook_secret=SECRET,
        )
        sync = await build_context(settings)
        queue = InProcessQueue(JOBS, {"sync": sync})
        sync.feed.use_queue(queue)
        queue.start()
        try:
            yield Pushing(sync, receiver)
        finally:
            await queue.close()
            await sync.close()


async def write(sync: SyncContext, user: uuid.UUID, obj: dict[str, Any]) -> None:
    """One committed upsert (its commit drains, the drain hands the push on)."""
    async with sync.session_factory() as session:
        await RecordRepository(session, DataType.WORKOUT).upsert(user, [obj])
        await session.commit()


def verified(push: Push) -> dict[str, Any]:
    """The push's body, checked with the Standard Webhooks reference verifier."""
    body: dict[str, Any] = Webhook(SECRET).verify(push.body, push.headers)
    return body


async def test_pushes_are_signed_and_in_order_per_user(pushing: Pushing) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    written: dict[uuid.UUID, list[dict[str, Any]]] = {alice: [], bob: []}
    for i in range(4):
        for user, whoop_user in ((alice, 101), (bob, 202)):
            obj = samples.workout(start=T0 + timedelta(hours=i), whoop_user_id=whoop_user)
            written[user].append(obj)
            await write(pushing.sync, user, obj)
    pushes = [verified(p) for p in await pushing.receiver.wait_for(8)]
    for user, whoop_user in ((alice, 101), (bob, 202)):
        mine = [p for p in pushes if p["user_id"] == str(user)]
        assert [p["record"] for p in mine] == written[user]
        assert {p["type"] for p in mine} == {"workout.upserted"}
        assert {p["whoop_user_id"] for p in mine} == {whoop_user}
        cursors = [decode(p["cursor"]) for p in mine]
        assert cursors == sorted(cursors)


async def test_a_forged_signature_fails_the_reference_verifier(pushing: Pushing) -> None:
    await write(pushing.sync, uuid.uuid4(), samples.workout(start=T0))
    push = (await pushing.receiver.wait_for(1))[0]
    other = Webhook("whsec_" + base64.b64encode(os.urandom(24)).decode())
    with pytest.raises(Exception, match="signature"):
        other.verify(push.body, push.headers)
    assert push.headers["webhook-id"].startswith("msg_")


async def test_a_refused_push_is_retried_and_later_pushes_wait_for_it(pushing: Pushing) -> None:
    user = uuid.uuid4()
    pushing.receiver.answers = [500]
    objs = [samples.workout(start=T0 + timedelta(hours=i)) for i in range(3)]
    for obj in objs:
        await write(pushing.sync, user, obj)
    await pushing.receiver.wait_for(3)
    got = [(p.answered, verified(p)) for p in pushing.receiver.pushes]
    assert [code for code, _ in got] == [500, 204, 204, 204]
    assert got[0][1] == got[1][1]  # the same change again, first
    assert (
        pushing.receiver.pushes[0].headers["webhook-id"]
        == (pushing.receiver.pushes[1].headers["webhook-id"])
    )
    assert [body["record"] for _, body in got[1:]] == objs
    first = decode(got[0][1]["cursor"])
    async with pushing.sync.session_factory() as session:
        attempts = (
            await session.execute(
                select(AppDeliveryAttempt.status, AppDeliveryAttempt.response_code)
                .where(AppDeliveryAttempt.change_seq == first)
                .order_by(AppDeliveryAttempt.id)
            )
        ).all()
        delivery = await session.get(AppDelivery, first)
    assert [tuple(a) for a in attempts] == [("failed", 500), ("ok", 204)]
    assert delivery is not None
    assert delivery.status == "delivered"
    assert delivery.attempts == 2
