"""The running pipeline on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.common.sync.harness import Pipeline, connected


@pytest.fixture
async def pipe(backend: str, database_url: str, redis_url: str) -> AsyncIterator[Pipeline]:
    """Simulator, webhook receiver and jobs on the `backend` parameter, with two members connected."""
    async with connected(backend, database_url, redis_url, (10001, 10002)) as running:
        yield running
