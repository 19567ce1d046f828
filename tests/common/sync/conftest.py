"""The running pipeline on each backend, one member connected; committed sessions, the token
cipher and the refresh locks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from common.crypto import TokenCipher
from common.db.engine import create_session_factory
from common.locks import Locks, RedisLocks
from tests.common.sync.connections import KEY, Factory
from tests.common.sync.harness import Pipeline, connected


@pytest.fixture
async def pipe(backend: str, database_url: str, redis_url: str) -> AsyncIterator[Pipeline]:
    """Simulator, receiver and jobs on the `backend` parameter."""
    async with connected(backend, database_url, redis_url, (10001,)) as running:
        yield running


@pytest.fixture
def factory(database_engine: AsyncEngine) -> Factory:
    """Sessions that commit, on the `backend` parameter's database."""
    return create_session_factory(database_engine)


@pytest.fixture
def cipher() -> TokenCipher:
    """The cipher of the tokens `connect` stores."""
    return TokenCipher(KEY)


@pytest.fixture
def locks(redis: aioredis.Redis) -> Locks:
    """Refresh locks on the test Redis, polled often."""
    return RedisLocks(redis, poll=0.01)
