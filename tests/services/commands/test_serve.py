"""`whoop-sync serve` end to end over real HTTP: the simulator as WHOOP, a user connected through the
OAuth flow, webhooks from the simulator's scenario, reads and sync status, on both backends; its
readiness when the database is away; and every metric moving when its event happens."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from common.auth import mint_token
from services.commands.serve import create_app
from services.simulator.config import SimConfig
from services.simulator.server import RunningSim, free_port, serve_app, serve_in_background
from tests import connect_flow
from tests.serving import CLIENT_ID, JWT, SECRET, settings_for, sim_config, uvicorn_on


@dataclass
class Served:
    """serve on a port, the simulator, and an HTTP client."""

    base: str
    sim: RunningSim
    http: httpx.AsyncClient

    async def connect(self, whoop_user_id: int) -> dict[str, str]:
        """Connect a new app user through the real flow; their bearer header."""
        user = uuid.uuid4()
        auth = {"Authorization": f"Bearer {mint_token(user, JWT)}"}
        done = await connect_flow.connect(self.http, auth, whoop_user_id, base=self.base)
        assert done.json() == {"status": "connected", "whoop_user_id": whoop_user_id}
        return auth

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of /metrics, keyed by name and labels."""
        text = (await self.http.get(f"{self.base}/metrics")).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


@contextlib.asynccontextmanager
async def running_serve(
    database_url: str, redis_url: str | None, **overrides: Any
) -> AsyncIterator[Served]:
    """The simulator and serve, each on a free port, the simulator's webhooks aimed at serve
    (`overrides` change its settings)."""
    port = free_port()
    async with serve_in_background(sim_config(port, users=3, seed=5)) as sim:
        settings = settings_for(database_url, redis_url, sim, port)
        app = create_app(settings.model_copy(update=overrides) if overrides else settings)
        async with (
            uvicorn_on(app, "127.0.0.1", port),
            httpx.AsyncClient(timeout=30) as http,
        ):
            yield Served(f"http://127.0.0.1:{port}", sim, http)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 20) -> None:
    """Wait until `check()` holds."""
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - polling another process over HTTP
            await asyncio.sleep(0.1)


@pytest.fixture
async def served(
    backend: str, pg_url: str, redis_url: str, redis: Any, tmp_path: Path
) -> AsyncIterator[Served]:
    """serve on the `backend` parameter: SQLite in-process, or PostgreSQL with arq on Redis."""
    if backend == "sqlite":
        url, queue_url = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}", None
    else:
        url, queue_url = pg_url, redis_url
    async with running_serve(url, queue_url) as s:
        yield s


async def test_connect_webhook_read_end_to_end(served: Served) -> None:
    auth = await served.connect(10001)
    read = await served.http.get(f"{served.base}/api/v1/smart/sleep", headers=auth)
    assert read.status_code == 200
    before = {r["id"] for r in read.json()["data"]}
    step = await served.http.post(
        f"{served.sim.base_url}/_sim/scenario/step", json={"user_id": 10001, "action": "new_sleep"}
    )
    new_sleep = next(c["id"] for c in step.json()["outcomes"][0]["changed"] if c["kind"] == "sleep")
    assert new_sleep not in before

    async def arrived() -> bool:
        body = (await served.http.get(f"{served.base}/api/v1/smart/sleep", headers=auth)).json()
        return bool(body["metadata"]["source"] == "cache" and body["data"][0]["id"] == new_sleep)

    await eventually(arrived)
    status = (await served.http.get(f"{served.base}/api/v1/smart/sync-status", headers=auth)).json()
    assert status["sync_status"]["sleep"]["sync_status"] == "success"
    assert set(status["sync_status"]) == {"recovery", "sleep", "cycle", "workout"}


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_metrics_move_when_their_events_happen(served: Served) -> None:
    start = await served.metrics()
    auth = await served.connect(10002)
    # The backfill done first: a backfill still running would fetch the new workout itself, and
    # the event's job would then find it asked for already and make no call of its own.
    done = {"job": "backfill_user", "outcome": "success"}
    await eventually(
        lambda: _grows(served, start, "whoopsync_jobs_total", done),
    )
    await served.http.get(f"{served.base}/api/v1/smart/cycle", headers=auth)  # fresh after backfill
    before = await served.metrics()
    control = f"{served.sim.base_url}/_sim"
    # A webhook (accepted, job, freshness lag), then a duplicate and a forged one.
    step = await served.http.post(
        f"{control}/scenario/step", json={"user_id": 10002, "action": "workout"}
    )
    assert step.status_code == 200
    await eventually(lambda: _sum_grows(served, before, "whoopsync_freshness_lag_seconds_count"))
    forged = await served.http.post(
        f"{served.base}/webhooks/whoop",
        content=b"{}",
        headers={"x-whoop-signature": "AAAA", "x-whoop-signature-timestamp": "1"},
    )
    assert forged.status_code == 401
    # Reads: cache, force_refresh, then WHOOP failing (stale) and rate limiting.
    await served.http.get(f"{served.base}/api/v1/smart/cycle", headers=auth)
    await served.http.get(f"{served.base}/api/v1/smart/cycle?force_refresh=true", headers=auth)
    await served.http.post(f"{control}/faults", json={"status": 503, "count": 20})
    await served.http.get(f"{served.base}/api/v1/smart/cycle?force_refresh=true", headers=auth)
    await served.http.delete(f"{control}/faults")
    # An expired access token makes the next call refresh it.
    await served.http.post(f"{control}/users/10002/expire-access-token")
    await served.http.get(f"{served.base}/api/v1/smart/workout?force_refresh=true", headers=auth)
    # Last, since WHOOP's reset then holds every call back: a 429.
    await served.http.post(f"{control}/faults", json={"status": 429, "count": 1})
    await served.http.get(f"{served.base}/api/v1/smart/sleep?force_refresh=true", headers=auth)
    after = await served.metrics()

    def grew(name: str, **labels: str) -> bool:
        return _total(after, name, labels) > _total(before, name, labels)

    assert grew("whoopsync_webhooks_total", outcome="accepted")
    assert grew("whoopsync_webhooks_total", outcome="rejected")
    assert grew("whoopsync_jobs_total", job="process_webhook_event", outcome="success")
    assert grew("whoopsync_whoop_calls_total", endpoint="/v2/activity/workout/{id}", status="200")
    assert grew("whoopsync_whoop_calls_total", status="503")
    assert grew("whoopsync_whoop_rate_limited_total")
    assert grew("whoopsync_freshness_lag_seconds_count")
    assert grew("whoopsync_reads_total", data_type="cycle", source="cache")
    assert grew("whoopsync_reads_total", data_type="cycle", source="whoop_api")
    assert grew("whoopsync_reads_total", data_type="cycle", source="stale_cache")
    assert grew("whoopsync_token_refreshes_total", outcome="success")
    assert _total(after, "whoopsync_whoop_budget_remaining", {"window": "minute"}) > 0


async def _sum_grows(served: Served, before: dict[Any, float], name: str) -> bool:
    return await _grows(served, before, name, {})


async def _grows(
    served: Served, before: dict[Any, float], name: str, labels: dict[str, str]
) -> bool:
    return _total(await served.metrics(), name, labels) > _total(before, name, labels)


def _total(samples: dict[Any, float], name: str, labels: dict[str, str]) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


async def test_readyz_fails_when_the_database_is_unreachable(tmp_path: Path) -> None:
    config = SimConfig(client_id=CLIENT_ID, client_secret=SECRET, users=1, days=1)
    async with serve_in_background(config) as sim:
        settings = settings_for("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", None, sim, 1)
        async with serve_app(create_app(settings)) as base, httpx.AsyncClient() as http:
            ready = await http.get(f"{base}/readyz")
            alive = await http.get(f"{base}/healthz")
    assert ready.status_code == 503
    assert "database" in ready.text
    assert alive.status_code == 200


@pytest.mark.parametrize("command", ["serve", "api"])
def test_process_serves_then_stops_with_exit_code_0_on_sigterm(
    command: str, tmp_path: Path, redis_url: str
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOOPSYNC_")} | {
        "WHOOPSYNC_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        "WHOOPSYNC_WHOOP_CLIENT_ID": "c",
        "WHOOPSYNC_WHOOP_CLIENT_SECRET": "s",
        "WHOOPSYNC_WHOOP_REDIRECT_URI": f"http://127.0.0.1:{port}/api/v1/whoop/callback",
        "WHOOPSYNC_JWT_SECRET": JWT,
        "WHOOPSYNC_TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "WHOOPSYNC_LOG_FORMAT": "json",
    }
    if command == "api":  # a separate api process shares its budget and locks through Redis
        env["WHOOPSYNC_REDIS_URL"] = redis_url
    cli = str(Path(sys.executable).with_name("whoop-sync"))
    proc = subprocess.Popen([cli, command, "--port", str(port)], env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail(f"{command} did not answer /healthz")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
