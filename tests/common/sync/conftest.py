"""The running pipeline on each backend, one member connected."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.common.sync.harness import Pipeline, pipeline


@pytest.fixture
async def pipe(
    backend: str, pg_url: str, sqlite_url: str, redis_url: str
) -> AsyncIterator[Pipeline]:
    """Simulator, receiver and jobs on the `backend` parameter."""
    url = pg_url if backend == "postgresql" else sqlite_url
    async with pipeline(backend, url, redis_url) as running:
        await running.connect(10001)
        running.sim.sim.reset_counters()
        yield running
