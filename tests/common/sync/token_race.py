"""Helper process for test_tokens: N concurrent WHOOP calls for one user whose token has expired.

Run as `python -m tests.common.sync.token_race PG_URL REDIS_URL USER_ID KEY SERVER_URL CALLS`;
prints `ready`, waits for a line on stdin, then prints the number of calls that succeeded.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid

import httpx
import redis.asyncio as aioredis
import structlog

from common.crypto import TokenCipher
from common.db.engine import create_engine, create_session_factory
from common.locks import RedisLocks
from common.ratelimit import LocalRateLimiter
from common.sync.tokens import ConnectionTokens
from common.whoop.client import WhoopClient
from common.whoop.oauth import OAuthClient


async def race(pg_url: str, redis_url: str, user_id: str, key: str, server: str, calls: int) -> int:
    engine = create_engine(pg_url)
    redis = aioredis.Redis.from_url(redis_url)
    async with httpx.AsyncClient() as http:
        factory = create_session_factory(engine)
        oauth = OAuthClient(http, f"{server}/oauth", "client", "secret", "https://x/cb")
        whoop = WhoopClient(http, f"{server}/developer", LocalRateLimiter(1000, 100_000))
        locks = RedisLocks(redis)

        async def call() -> bool:
            tokens = ConnectionTokens(factory, uuid.UUID(user_id), TokenCipher(key), oauth, locks)
            return (await whoop.for_user(tokens).profile()).user_id == 10129

        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        results = await asyncio.gather(*(call() for _ in range(calls)))
    await redis.aclose()
    await engine.dispose()
    return sum(results)


if __name__ == "__main__":
    # stdout is the protocol with the test: keep log lines off it.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    pg, rd, user, key, server, calls = sys.argv[1:7]
    print(asyncio.run(race(pg, rd, user, key, server, int(calls))), flush=True)
