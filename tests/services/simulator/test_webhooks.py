"""The webhook sender: WHOOP's v2 payload and signature, 5 retries, connected members only."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.simulator.config import SimConfig
from services.simulator.server import serve_app
from services.simulator.state import Simulator
from tests.services.simulator.conftest import CLIENT_SECRET, connect


@dataclass
class Receiver:
    """A webhook endpoint over real HTTP that answers with scripted statuses (then 204)."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = Receiver()

    async def hook(request: Request) -> Response:
        got.received.append((dict(request.headers), await request.body()))
        return Response(status_code=got.statuses.pop(0) if got.statuses else 204)

    async with serve_app(
        Starlette(routes=[Route("/webhooks/whoop", hook, methods=["POST"])])
    ) as url:
        got.url = f"{url}/webhooks/whoop"
        yield got


@pytest.fixture
def sim_config(sim_config: SimConfig, receiver: Receiver) -> SimConfig:
    return dataclasses.replace(sim_config, webhook_url=receiver.url)


async def _settle(sim: Simulator) -> None:
    async with asyncio.timeout(10):
        await sim.webhooks.wait_idle()


async def test_signature_is_whoops_hmac_over_timestamp_and_body(
    client: httpx.AsyncClient, sim: Simulator, receiver: Receiver
) -> None:
    await connect(client)
    user_id = next(iter(sim.world.connected))
    sleep_id = next(iter(sim.world.data(user_id).kinds["sleep"]))
    sent = await client.post(
        "/_sim/webhooks", json={"user_id": user_id, "id": sleep_id, "type": "sleep.updated"}
    )
    assert sent.status_code == 202
    await _settle(sim)
    headers, body = receiver.received[0]
    timestamp = headers["x-whoop-signature-timestamp"]
    expected = base64.b64encode(
        hmac.new(CLIENT_SECRET.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    ).decode()
    assert headers["x-whoop-signature"] == expected
    assert abs(int(timestamp) - time.time() * 1000) < 60_000
    payload = json.loads(body)
    assert payload == {
        "user_id": user_id,
        "id": sleep_id,
        "type": "sleep.updated",
        "trace_id": payload["trace_id"],
    }


async def test_failed_delivery_is_retried_five_times(
    client: httpx.AsyncClient, sim: Simulator, receiver: Receiver
) -> None:
    await connect(client)
    user_id = next(iter(sim.world.connected))
    receiver.statuses = [500] * 10
    await client.post(
        "/_sim/webhooks", json={"user_id": user_id, "id": "x", "type": "workout.deleted"}
    )
    await _settle(sim)
    assert len(receiver.received) == 6
    assert len({json.loads(b)["trace_id"] for _, b in receiver.received}) == 1
    delivery = (await client.get("/_sim/webhooks")).json()["deliveries"][0]
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 6
    assert delivery["last_status"] == 500


async def test_delivery_succeeds_after_transient_failures(
    client: httpx.AsyncClient, sim: Simulator, receiver: Receiver
) -> None:
    await connect(client)
    receiver.statuses = [500, 502]
    sim.webhooks.send(next(iter(sim.world.connected)), "abc", "recovery.updated")
    await _settle(sim)
    assert len(receiver.received) == 3
    assert sim.webhooks.log[-1].status == "delivered"
    # The counters say how the receiver answered each attempt, 5xx included.
    answers = (await client.get("/_sim/counters")).json()["webhook_answers"]
    assert answers == {"500": 1, "502": 1, "204": 1}
    await client.post("/_sim/reset")
    assert (await client.get("/_sim/counters")).json()["webhook_answers"] == {}


async def test_transport_errors_are_retried(sim_config: SimConfig) -> None:
    from services.simulator.server import free_port

    config = dataclasses.replace(sim_config, webhook_url=f"http://127.0.0.1:{free_port()}/nowhere")
    sim = Simulator(config)
    delivery = sim.webhooks.send(sim_config.first_user_id, "abc", "sleep.deleted")
    await _settle(sim)
    await sim.aclose()
    assert delivery.status == "failed"
    assert delivery.attempts == 6
    assert delivery.last_error


async def test_unconnected_members_get_no_webhooks(
    client: httpx.AsyncClient, sim: Simulator, receiver: Receiver
) -> None:
    outcome: Any = (await client.post("/_sim/scenario/step", json={"action": "new_sleep"})).json()
    assert all(o["events"] for o in outcome["outcomes"])
    await _settle(sim)
    assert receiver.received == []
