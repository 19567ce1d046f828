"""Users connect the way the product's users do: the api's connect flow against the simulator's
OAuth server (authorize approves at once for `login_hint`), then the api's callback."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx

from bench.infra import (
    JWT_SECRET,
    Cluster,
    Proc,
    free_port,
    pg_connect,
    plain_dsn,
    product_env,
    start_pipeline,
)
from bench.sim import SimControl, product_whoop_env, start_sim


def bearer_tokens(user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Bearer tokens for app users, signed like `whoop-sync dev-token` signs them."""
    from common.auth import mint_token

    return {u: mint_token(u, JWT_SECRET, timedelta(hours=12)) for u in user_ids}


async def _connect_one(http: httpx.AsyncClient, api: Proc, token: str, whoop_id: int) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    start = await http.get(f"{api.url}/api/v1/whoop/connect", headers=auth)
    start.raise_for_status()
    url = httpx.URL(start.json()["authorization_url"])
    approved = await http.get(url.copy_merge_params({"login_hint": str(whoop_id)}))
    if approved.status_code != 302:
        raise RuntimeError(f"authorize answered {approved.status_code}: {approved.text[:200]}")
    done = await http.get(approved.headers["location"])
    if done.status_code != 200:
        raise RuntimeError(f"callback answered {done.status_code}: {done.text[:300]}")


async def connect_users(
    api: Proc, pairs: list[tuple[uuid.UUID, int]], concurrency: int = 20
) -> dict[uuid.UUID, str]:
    """Connect each (app user, WHOOP id) through the api; returns the users' bearer tokens."""
    tokens = bearer_tokens([u for u, _ in pairs])
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def one(user_id: uuid.UUID, whoop_id: int) -> None:
            async with gate:
                for attempt in range(3):
                    try:
                        await _connect_one(http, api, tokens[user_id], whoop_id)
                        return
                    except (RuntimeError, httpx.TransportError, httpx.HTTPStatusError) as exc:
                        # On a fast simulated clock a code can expire before it is exchanged,
                        # a kept-alive connection the server just closed fails once, and a
                        # shared database server out of connections answers 500 for a moment.
                        refused = (
                            isinstance(exc, httpx.HTTPStatusError)
                            and not exc.response.is_server_error
                        )
                        if attempt == 2 or refused:
                            raise
                        await asyncio.sleep(1.0 + attempt)

        await asyncio.gather(*(one(u, w) for u, w in pairs))
    return tokens


async def wait_backfilled(
    dsn: str,
    users: int,
    limit: float,
    poll: float = 0.1,
    *,
    on_stall: Callable[[list[uuid.UUID]], Awaitable[None]] | None = None,
    stall: float = 20.0,
) -> float:
    """Wait until every user's four types have a finished backfill attempt; returns when (epoch).

    With `on_stall`, when nothing moved for `stall` seconds it is called with the users whose
    backfill never started (its enqueue failed: the product finishes those a quarter of an hour
    later, by reconciliation), and the wait goes on.
    """
    conn = await pg_connect(dsn)
    deadline = time.monotonic() + limit
    last, moved = -1, time.monotonic()
    try:
        while time.monotonic() < deadline:
            done = int(await conn.fetchval(_BACKFILLED))
            if done >= users * 4:
                return time.time()
            if done != last:
                last, moved = done, time.monotonic()
            elif on_stall is not None and time.monotonic() - moved > stall:
                await on_stall(list(await conn.fetchval(_NOT_STARTED)))
                moved = time.monotonic()
            await asyncio.sleep(poll)
    finally:
        await conn.close()
    raise RuntimeError(f"backfill of {users} users not finished within {limit:.0f}s")


_BACKFILLED = (
    "SELECT count(DISTINCT (user_id, data_type)) FROM whoop_sync_attempt WHERE trigger = 'backfill'"
)
_NOT_STARTED = (
    "SELECT coalesce(array_agg(c.user_id), '{}') FROM whoop_connection AS c "
    "WHERE NOT EXISTS (SELECT 1 FROM whoop_sync_attempt AS a "
    "WHERE a.user_id = c.user_id AND a.trigger = 'backfill')"
)


@dataclass
class Connected:
    """The product's api, webhook and worker on the simulator, its users connected and backfilled."""

    env: dict[str, str]
    redirect: str
    sim: Proc
    ctl: SimControl
    api: Proc
    hook: Proc
    worker: Proc
    whoop_ids: list[int]


async def connected_pipeline(procs: Cluster, db: str, users: int) -> Connected:
    """Start the simulator (`users` members, two days of data, WHOOP's budget unbounded on both
    sides) and the product's three processes on database `db`; connect `users` app users and
    wait for their backfills. The caller closes `ctl`."""
    sim = await start_sim(procs, users=users, days=2, per_minute=10**6, per_day=10**8)
    api_port = free_port()
    redirect = f"http://127.0.0.1:{api_port}/api/v1/whoop/callback"
    env = product_env(
        db,
        whoop_redirect_uri=redirect,
        whoop_rate_limit_per_minute=10**6,
        whoop_rate_limit_per_day=10**8,
        backfill_days=2,
    ) | product_whoop_env(sim)
    api, hook, worker = await start_pipeline(procs, env, api_port=api_port)
    ctl = SimControl(sim)
    try:
        whoop_ids = (await ctl.user_ids())[:users]
        await connect_users(api, [(uuid.uuid4(), w) for w in whoop_ids])
        await wait_backfilled(plain_dsn(db), len(whoop_ids), 120)
    except BaseException:
        await ctl.aclose()
        raise
    return Connected(env, redirect, sim, ctl, api, hook, worker, whoop_ids)
