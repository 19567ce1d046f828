"""Everything a sync needs, built once per process (arq `on_startup`, a FastAPI lifespan, `serve`).

`build_context(settings)` creates what it is not given (engine, Redis client, httpx client) and
`close()` closes exactly what it created, so `serve` can share one context between its parts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from common.config import Settings
from common.crypto import TokenCipher
from common.db.engine import create_engine, create_lookup_factory, create_session_factory
from common.feed.feed import ChangeFeed
from common.locks import Locks, create_locks
from common.queue import arq_redis
from common.ratelimit import RateLimiter, create_rate_limiter
from common.sync.leases import LeaseKeeper
from common.sync.oplog import CallLog
from common.sync.service import SyncService
from common.sync.tokens import ConnectionTokens
from common.whoop.client import TokenSource, WhoopClient
from common.whoop.oauth import OAuthClient

__all__ = ["SyncContext", "build_context", "engine_for"]


def engine_for(settings: Settings) -> AsyncEngine:
    """The process's engine; PostgreSQL connects with a bounded timeout so outages fail fast."""
    if settings.is_postgres:
        return create_engine(
            settings.database_url, pooler=settings.database_pooler, connect_args={"timeout": 5}
        )
    return create_engine(settings.database_url)


# WHOOP calls in flight at once per process (the rest wait for a connection).
WHOOP_CONNECTIONS = 10


@dataclass
class SyncContext:
    """Engine, sessions, Redis, HTTP, WHOOP client, limiter, locks, cipher, OAuth and change feed
    of a process."""

    settings: Settings
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    # Sessions for one statement at a time (autocommit on PostgreSQL: no BEGIN, no ROLLBACK).
    lookups: async_sessionmaker[AsyncSession]
    redis: Redis | None
    http: httpx.AsyncClient
    limiter: RateLimiter
    locks: Locks
    cipher: TokenCipher
    oauth: OAuthClient
    whoop: WhoopClient
    feed: ChangeFeed
    # The leases of the events this process works on, renewed together.
    leases: LeaseKeeper
    # WHOOP calls per hour by trigger, written in batches (closed with the context).
    calls: CallLog | None = None
    _owned: list[Any] = field(default_factory=list, repr=False)

    def tokens(self, user_id: uuid.UUID) -> TokenSource:
        """The token source of one user's connection."""
        return ConnectionTokens(self.session_factory, user_id, self.cipher, self.oauth, self.locks)

    def service(self, session: AsyncSession) -> SyncService:
        """A sync service over one session (one unit of work)."""
        return SyncService(session, self.whoop, self.tokens, self.settings, lookups=self.lookups)

    async def close(self) -> None:
        """Close what `build_context` created (not what it was handed)."""
        for resource in reversed(self._owned):
            if isinstance(resource, AsyncEngine):
                await resource.dispose()
            else:
                await resource.aclose()
        self._owned.clear()


async def build_context(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    redis: Redis | None = None,
    http: httpx.AsyncClient | None = None,
) -> SyncContext:
    """Build the context; Redis is used when configured (or given), else in-process limiter and locks.

    Needs the WHOOP client id, secret and redirect URI and the token encryption key (ConfigError).
    """
    settings.require(
        "whoop_client_id", "whoop_client_secret", "whoop_redirect_uri", "token_encryption_key"
    )
    owned: list[Any] = []
    if engine is None:
        engine = engine_for(settings)
        owned.append(engine)
    if redis is None and settings.redis_url:
        redis = arq_redis(settings.redis_url)
        owned.append(redis)
    whoop_http = http
    if http is None:
        http = httpx.AsyncClient()
        # WHOOP's calls get a pool of their own, small and apart from the pushes': the budget
        # (100 calls a minute) binds long before WHOOP_CONNECTIONS calls in flight do, httpcore
        # walks every pooled connection on each request (twice as much CPU per call with 20
        # than with 5), and a slow app receiver can never hold a connection WHOOP calls need.
        limits = httpx.Limits(
            max_connections=WHOOP_CONNECTIONS, max_keepalive_connections=WHOOP_CONNECTIONS
        )
        whoop_http = httpx.AsyncClient(limits=limits)
        owned += [http, whoop_http]
    limiter = create_rate_limiter(settings, redis)
    session_factory = create_session_factory(engine)
    lookups = create_lookup_factory(engine, pooler=settings.database_pooler)
    feed = ChangeFeed(settings, session_factory, lookups)
    owned.append(feed)
    calls = CallLog(session_factory)
    owned.append(calls)
    whoop = WhoopClient.from_settings(whoop_http or http, settings, limiter)
    whoop.on_call = calls.note
    return SyncContext(
        settings=settings,
        engine=engine,
        session_factory=session_factory,
        lookups=lookups,
        redis=redis,
        http=http,
        limiter=limiter,
        locks=create_locks(redis),
        cipher=TokenCipher(settings.token_encryption_key),
        oauth=OAuthClient.from_settings(http, settings),
        whoop=whoop,
        feed=feed,
        leases=LeaseKeeper(session_factory, settings.inbox_lease_seconds),
        calls=calls,
        _owned=owned,
    )
