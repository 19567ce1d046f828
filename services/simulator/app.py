"""`create_app(config)`: the simulator as one Starlette ASGI app (WHOOP API, OAuth, control API)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from services.simulator import api, control, oauth_routes, ops, persist
from services.simulator.config import SimConfig
from services.simulator.gate import BadRequest, error
from services.simulator.state import Simulator

log = structlog.get_logger()


async def _bad_request(request: Request, exc: Exception) -> Response:
    return error(400, str(exc))


async def _drive(sim: Simulator, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            sim.step()
            sim.grow_cycles()
        except Exception:  # a broken step must not stop the driver of a long demo
            log.exception("sim.step_failed")


def create_app(config: SimConfig) -> Starlette:
    """The simulator; its state is `app.state.sim` (a `Simulator`)."""
    sim = Simulator(config)
    if config.state_file:
        persist.load(sim.world, Path(config.state_file))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        driver = None
        if config.scenario_interval:
            driver = asyncio.create_task(_drive(sim, config.scenario_interval))
        try:
            yield
        finally:
            if driver is not None:
                driver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await driver
            await sim.aclose()
            if config.state_file:
                persist.save(sim.world, Path(config.state_file))

    app = Starlette(
        routes=[*api.routes(), *oauth_routes.routes(), *control.routes(), *ops.routes()],
        exception_handlers={BadRequest: _bad_request},
        lifespan=lifespan,
    )
    app.state.sim = sim
    return app
