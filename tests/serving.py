"""`whoop-sync serve` on a port known in advance, with the simulator as WHOOP sending its webhooks
there: what the tests of serve and of the console in a browser share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from cryptography.fernet import Fernet

from common.config import Settings
from services.simulator.config import SimConfig
from services.simulator.server import RunningSim

CLIENT_ID = "serve-client"
SECRET = "serve-webhook-secret"
JWT = "serve-jwt-secret-of-enough-length"


@contextlib.asynccontextmanager
async def uvicorn_on(app: Any, host: str, port: int) -> AsyncIterator[None]:
    """Serve an ASGI app with uvicorn on `host:port` in this loop until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(20):
            while not server.started:
                assert not task.done(), "the server exited during start-up"
                await asyncio.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        await task


def sim_config(port: int, *, users: int, seed: int, days: int = 7) -> SimConfig:
    """A simulated world whose webhooks go to serve on `port`, delivered again 0.2 s after a
    failed delivery."""
    return SimConfig(
        client_id=CLIENT_ID,
        client_secret=SECRET,
        users=users,
        days=days,
        seed=seed,
        webhook_url=f"http://127.0.0.1:{port}/webhooks/whoop",
        rate_limit_per_minute=100_000,
        rate_limit_per_day=1_000_000,
        webhook_retry_delays=(0.2,) * 5,
    )


def settings_for(
    database_url: str, redis_url: str | None, sim: RunningSim, port: int, **extra: Any
) -> Settings:
    """serve's settings on `port`, pointing at the simulator (`extra` settings on top)."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        whoop_api_base_url=sim.api_base_url,
        whoop_oauth_base_url=sim.oauth_base_url,
        whoop_client_id=CLIENT_ID,
        whoop_client_secret=SECRET,
        whoop_redirect_uri=f"http://127.0.0.1:{port}/api/v1/whoop/callback",
        jwt_secret=JWT,
        token_encryption_key=Fernet.generate_key().decode(),
        inbox_sweep_seconds=1,
        log_format="console",
        **extra,
    )
