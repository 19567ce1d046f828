"""Fault tests: the pipeline in-process under budget and WHOOP outages, and the product's real
processes against private PostgreSQL and Redis servers that the tests stop and start."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.common.sync.harness import Pipeline, connected


@pytest.fixture
async def pipe(backend: str, database_url: str, redis_url: str) -> AsyncIterator[Pipeline]:
    """Simulator, receiver and jobs on the `backend` parameter, two members connected, with
    back-offs scaled down 200 times (WHOOP outages of minutes take seconds)."""
    async with connected(
        backend,
        database_url,
        redis_url,
        (10001, 10002),
        retry_backoff_scale=0.005,
        reconcile_interval_seconds=1,
    ) as running:
        yield running
