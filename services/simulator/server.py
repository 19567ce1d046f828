"""Run the simulator on a real port inside the current event loop (tests, benchmarks, demos)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from services.simulator.app import create_app
from services.simulator.config import SimConfig
from services.simulator.state import Simulator


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningSim:
    """A simulator listening on `base_url`; `sim` is its state."""

    base_url: str
    app: Starlette
    sim: Simulator

    @property
    def api_base_url(self) -> str:
        """Value for WHOOPSYNC_WHOOP_API_BASE_URL."""
        return f"{self.base_url}/developer"

    @property
    def oauth_base_url(self) -> str:
        """Value for WHOOPSYNC_WHOOP_OAUTH_BASE_URL."""
        return f"{self.base_url}/oauth/oauth2"


@contextlib.asynccontextmanager
async def serve_app(app: ASGIApp, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve any ASGI app with uvicorn on a free port in this loop; yields its base URL."""
    port = free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server exited during start-up")
                await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def serve_in_background(
    config: SimConfig, host: str = "127.0.0.1"
) -> AsyncIterator[RunningSim]:
    """Start the simulator on a free port in this loop; stop it on exit."""
    app = create_app(config)
    async with serve_app(app, host) as base_url:
        yield RunningSim(base_url, app, app.state.sim)
