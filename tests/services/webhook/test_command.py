"""`whoop-sync webhook` as a real process: a signed webhook recorded and enqueued, the operations
routes answering, SIGTERM stopping it with exit code 0, and a refusal to start without the secret."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from common.db.models import WebhookEvent
from common.types import EventStatus
from common.whoop.signature import sign
from services.simulator.server import free_port
from tests.common.sync.harness import CLIENT_SECRET, make_settings
from tests.services.worker.test_command import CLI, DEADLINE, cli_env, run_cli, stop


@pytest.fixture
def env(pg_url: str, redis_url: str) -> dict[str, str]:
    """The webhook's settings: the run's PostgreSQL and the test Redis index."""
    return cli_env(make_settings(pg_url, redis_url, f"http://127.0.0.1:{free_port()}"))


async def _ready(http: httpx.AsyncClient, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(DEADLINE):
        while True:
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                assert process.returncode is None, f"exited early with {process.returncode}"
                await asyncio.sleep(0.1)


@pytest.fixture
async def webhook(
    env: dict[str, str], redis: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, httpx.AsyncClient]]:
    """`whoop-sync webhook` on a free port, answering; stopped (if still up) afterwards."""
    port = free_port()
    log = (tmp_path / "webhook.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        CLI, "webhook", "--port", str(port), env=env, cwd=tmp_path, stdout=log, stderr=log
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await _ready(http, process)
            yield process, http
    finally:
        await stop(process)
        log.close()


def _signed(body: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    stamp = str(int(time.time() * 1000))
    headers = {
        "content-type": "application/json",
        "x-whoop-signature-timestamp": stamp,
        "x-whoop-signature": sign(CLIENT_SECRET, stamp, raw),
    }
    return raw, headers


async def _event(engine: AsyncEngine, trace_id: str) -> WebhookEvent | None:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        return await session.scalar(select(WebhookEvent).where(WebhookEvent.trace_id == trace_id))


@pytest.mark.slow
async def test_webhook_process_records_a_signed_event_and_stops_on_sigterm(
    webhook: tuple[asyncio.subprocess.Process, httpx.AsyncClient],
    pg_engine: AsyncEngine,
    redis: aioredis.Redis,
) -> None:
    process, http = webhook
    trace_id = f"cmd-{uuid.uuid4()}"
    body = {
        "user_id": 10001,
        "id": str(uuid.uuid4()),
        "type": "sleep.updated",
        "trace_id": trace_id,
    }
    raw, headers = _signed(body)
    try:
        assert (await http.post("/webhooks/whoop", content=raw, headers=headers)).status_code == 204
        event = await _event(pg_engine, trace_id)
        assert event is not None
        assert (event.event_type, event.whoop_user_id, event.status) == (
            "sleep.updated",
            10001,
            EventStatus.PENDING.value,
        )
        assert await redis.zcard("arq:queue") == 1  # handed to the worker's queue
        assert (await http.get("/readyz")).status_code == 200
        metrics = (await http.get("/metrics")).text
        assert 'whoopsync_webhooks_total{outcome="accepted"} 1.0' in metrics
        assert await stop(process) == 0
    finally:
        async with pg_engine.begin() as connection:
            await connection.execute(delete(WebhookEvent).where(WebhookEvent.trace_id == trace_id))


@pytest.mark.slow
async def test_webhook_refuses_to_start_without_the_client_secret(
    env: dict[str, str], tmp_path: Path
) -> None:
    without = {k: v for k, v in env.items() if k != "WHOOPSYNC_WHOOP_CLIENT_SECRET"}
    code, out, err = await run_cli(without, "webhook", "--port", str(free_port()), cwd=tmp_path)
    assert code == 2
    assert out == ""
    assert err.splitlines() == ["whoop-sync: WHOOPSYNC_WHOOP_CLIENT_SECRET is required but not set"]
