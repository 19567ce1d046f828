"""The production shape on private servers: PostgreSQL, Redis, the simulator, and separate
`whoop-sync webhook`, `api` and `worker` processes; users connected through the api; webhooks sent
the way WHOOP sends them (a 503 or no answer is delivered again)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet

from common.auth import mint_token
from common.db.migrate import upgrade_async
from services.simulator.webhooks import signature
from tests import connect_flow
from tests.faults.pgbouncer import PgBouncer
from tests.faults.services import (
    PrivatePostgres,
    PrivateRedis,
    Process,
    Processes,
    free_port,
    wait_http,
)

CLIENT_ID, CLIENT_SECRET = "faults-client", "faults-secret"
JWT_SECRET = "faults-jwt-secret-of-at-least-32-bytes"
REDELIVERY_DELAY = 0.5  # seconds before WHOOP's next delivery of an unanswered webhook


@dataclass
class Deliveries:
    """What sending the webhooks came to."""

    answered: int = 0  # finally answered 204
    redelivered: int = 0  # deliveries answered otherwise (503, no answer) and sent again
    lost: int = 0  # never answered 204 within the delivery window
    statuses: Counter[str] = field(default_factory=Counter)


@dataclass
class Reads:
    """What the reads running alongside came to."""

    statuses: Counter[str] = field(default_factory=Counter)

    def add(self, response: httpx.Response | None) -> None:
        """Count one answer: its status, and its source or error code."""
        if response is None:
            self.statuses["no_answer"] += 1
            return
        body: dict[str, Any] = response.json()
        detail = body.get("metadata", {}).get("source") or body.get("error", {}).get("code")
        self.statuses[f"{response.status_code} {detail}"] += 1


@dataclass
class Cluster:
    """Running servers and processes, with the means to send webhooks and read."""

    pg: PrivatePostgres
    redis: PrivateRedis
    procs: Processes
    env: dict[str, str]
    sim: Process
    webhook: Process
    api: Process
    worker: Process
    http: httpx.AsyncClient
    members: dict[int, uuid.UUID] = field(default_factory=dict)
    bouncer: PgBouncer | None = None  # with `pooled`: the processes reach PostgreSQL through it

    def start_worker(self) -> Process:
        """Another worker process (after one was killed)."""
        self.worker = self.procs.start("worker", self.env, http=False)
        return self.worker

    async def connect(self, whoop_id: int) -> None:
        """Connect a simulated member through the api's connect flow."""
        user_id = uuid.uuid4()
        auth = {"Authorization": f"Bearer {self.token(user_id)}"}
        started = await connect_flow.start(self.http, auth, self.api.url)
        redirect = await connect_flow.approve(self.http, started["authorization_url"], whoop_id)
        done = await self.http.get(redirect)  # the api's own GET callback, as a browser would
        assert done.status_code == 200, done.text
        self.members[whoop_id] = user_id

    def token(self, user_id: uuid.UUID) -> str:
        """A bearer token for an app user."""
        return mint_token(user_id, JWT_SECRET, timedelta(hours=2))

    async def new_sleeps(self, count: int) -> list[dict[str, Any]]:
        """New sleeps at the simulator (no webhook yet), spread over the members."""
        return await self.new_records(count, "sleep")

    async def new_records(self, count: int, kind: str) -> list[dict[str, Any]]:
        """New records of a kind (sleep, workout) at the simulator (no webhook yet), spread over
        the members."""
        ids = list(self.members)
        # Bounded: thousands of requests waiting on one httpx pool cost quadratic time.
        bound = asyncio.Semaphore(32)

        async def one(n: int) -> dict[str, Any]:
            async with bound:
                answer = await self.http.post(
                    f"{self.sim.url}/_sim/users/{ids[n % len(ids)]}/{kind}",
                    json={"id": str(uuid.uuid4())},
                    params={"webhook": "false"},
                )
            answer.raise_for_status()
            record: dict[str, Any] = answer.json()["record"]
            return record

        return list(await asyncio.gather(*(one(n) for n in range(count))))

    async def deliver(
        self,
        records: list[dict[str, Any]],
        rate: float,
        window: float = 120.0,
        out: Deliveries | None = None,
        event_type: str = "sleep.updated",
    ) -> Deliveries:
        """Send one `event_type` per record at `rate` a second, each delivered again after
        a 503 or no answer, until answered 204 or `window` seconds have passed (counted into
        `out` as they happen)."""
        out = Deliveries() if out is None else out
        began = time.monotonic()

        async def one(n: int, record: dict[str, Any]) -> None:
            await asyncio.sleep(max(0.0, began + n / rate - time.monotonic()))
            payload = {
                "user_id": record["user_id"],
                "id": record["id"],
                "type": event_type,
                "trace_id": f"trace-{record['id']}",
            }
            raw = json.dumps(payload, separators=(",", ":")).encode()
            while time.monotonic() - began < window:
                stamp = str(int(time.time() * 1000))
                headers = {
                    "content-type": "application/json",
                    "x-whoop-signature-timestamp": stamp,
                    "x-whoop-signature": signature(CLIENT_SECRET, stamp, raw),
                }
                try:
                    answer = await self.http.post(
                        f"{self.webhook.url}/webhooks/whoop", content=raw, headers=headers
                    )
                    status = str(answer.status_code)
                except httpx.HTTPError:
                    status = "no_answer"
                out.statuses[status] += 1
                if status == "204":
                    out.answered += 1
                    return
                out.redelivered += 1
                await asyncio.sleep(REDELIVERY_DELAY)
            out.lost += 1

        await asyncio.gather(*(one(n, r) for n, r in enumerate(records)))
        return out

    async def read_while(self, running: asyncio.Future[Any], reads: Reads) -> None:
        """Read every member's sleeps in a loop until `running` is done."""
        while not running.done():
            for user_id in self.members.values():
                try:
                    answer = await self.http.get(
                        f"{self.api.url}/api/v1/smart/sleep",
                        params={"limit": 100},
                        headers={"Authorization": f"Bearer {self.token(user_id)}"},
                    )
                except httpx.HTTPError:
                    reads.add(None)
                else:
                    reads.add(answer)
            await asyncio.sleep(0.1)

    async def storm_across_outage(
        self,
        records: list[dict[str, Any]],
        rate: float,
        server: PrivatePostgres | PrivateRedis,
        down: float,
    ) -> tuple[Deliveries, Reads, float]:
        """Send the records' webhooks at `rate` with reads alongside; a second in, stop `server`
        for `down` seconds and start it again. What the sends and the reads came to, and when
        the server was back (`time.monotonic()`)."""
        reads = Reads()
        storm = asyncio.ensure_future(self.deliver(records, rate=rate))
        reader = asyncio.ensure_future(self.read_while(storm, reads))
        await asyncio.sleep(1.0)
        server.stop()
        await asyncio.sleep(down)
        await server.start()
        back = time.monotonic()
        delivered = await storm
        await reader
        return delivered, reads, back

    async def cached_ids(self, kind: str = "sleep") -> set[str]:
        """Ids of every record of a kind the api serves from its cache (one read per member)."""
        ids: set[str] = set()
        for user_id in self.members.values():
            answer = await self.http.get(
                f"{self.api.url}/api/v1/smart/{kind}",
                params={"limit": 100},
                headers={"Authorization": f"Bearer {self.token(user_id)}"},
            )
            if answer.status_code != 200:
                continue
            body = answer.json()
            if body["metadata"]["source"] == "cache":
                ids |= {r["id"] for r in body["data"]}
        return ids

    async def readable_within(self, ids: set[str], limit: float, kind: str = "sleep") -> bool:
        """True once every id is served from the cache, False if `limit` seconds pass first."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if ids <= await self.cached_ids(kind):
                    return True
            await asyncio.sleep(0.2)
        return False

    async def ready(self, process: Process, limit: float) -> bool:
        """True once `/readyz` answers 200, False if `limit` seconds pass first."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await self.http.get(f"{process.url}/readyz")).status_code == 200:
                    return True
            await asyncio.sleep(0.1)
        return False

    async def settled_within(self, records: list[dict[str, Any]], limit: float) -> bool:
        """True once every record's event is recorded and none is pending, False after `limit`."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            events = await self.events(records)
            if len(events) == len(records) and all(e["status"] != "pending" for e in events):
                return True
            await asyncio.sleep(0.2)
        return False

    async def backfilled_within(self, limit: float) -> bool:
        """True once no connection has a backfill pending, False after `limit` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            connection = await asyncpg.connect(self.pg.dsn)
            try:
                pending = await connection.fetchval(
                    "SELECT count(*) FROM whoop_connection WHERE backfill_pending_since IS NOT NULL"
                )
            finally:
                await connection.close()
            if pending == 0:
                return True
            await asyncio.sleep(0.2)
        return False

    async def events(self, records: list[dict[str, Any]] | None = None) -> list[asyncpg.Record]:
        """The inbox rows of these records (every row without): status, attempts, record id."""
        sql = "SELECT record_id, status, attempts, last_error FROM whoop_webhook_event"
        connection = await asyncpg.connect(self.pg.dsn)
        try:
            if records is None:
                return list(await connection.fetch(sql))
            ids = [r["id"] for r in records]
            return list(await connection.fetch(sql + " WHERE record_id = ANY($1)", ids))
        finally:
            await connection.close()

    async def fetches(self) -> int:
        """Sleep-by-id calls the simulator answered."""
        counters = (await self.http.get(f"{self.sim.url}/_sim/counters")).json()
        by_endpoint: dict[str, int] = counters.get("by_endpoint", {})
        return sum(
            n for name, n in by_endpoint.items() if name.startswith("GET /v2/activity/sleep/")
        )


@contextlib.asynccontextmanager
async def running_cluster(
    log_dir: Path, members: int = 3, *, pooled: bool = False, **settings: str
) -> AsyncIterator[Cluster]:
    """Start everything, connect `members` simulated members; stop everything afterwards. With
    `pooled`, every process (`migrate` included) reaches PostgreSQL through PgBouncer in
    transaction mode, with WHOOPSYNC_DATABASE_POOLER=transaction."""
    pg, redis = PrivatePostgres(), PrivateRedis()
    procs = Processes(log_dir)
    bouncer = PgBouncer(pg.port) if pooled else None
    try:
        pg.init()
        await pg.start()
        await redis.start()
        database = {"WHOOPSYNC_DATABASE_URL": pg.url}
        if bouncer is None:
            await upgrade_async(pg.url)
        else:
            await bouncer.start()
            database = {
                "WHOOPSYNC_DATABASE_URL": bouncer.url("postgres"),
                "WHOOPSYNC_DATABASE_POOLER": "transaction",
            }
            migrate = procs.start("migrate", database, http=False)
            assert await asyncio.to_thread(migrate.popen.wait, 60) == 0, migrate.log_tail()
        sim = procs.start(
            "sim", {}, "--users", str(members), "--days", "2", "--seed", "5",
            "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
            "--rate-limit-per-minute", "1000000", "--rate-limit-per-day", "100000000",
        )  # fmt: skip
        await wait_http(sim, "/_sim/health")
        api_port = free_port()
        env = (
            database
            | {
                "WHOOPSYNC_REDIS_URL": redis.url,
                "WHOOPSYNC_WHOOP_API_BASE_URL": f"{sim.url}/developer",
                "WHOOPSYNC_WHOOP_OAUTH_BASE_URL": f"{sim.url}/oauth/oauth2",
                "WHOOPSYNC_WHOOP_CLIENT_ID": CLIENT_ID,
                "WHOOPSYNC_WHOOP_CLIENT_SECRET": CLIENT_SECRET,
                "WHOOPSYNC_WHOOP_REDIRECT_URI": f"http://127.0.0.1:{api_port}/api/v1/whoop/callback",
                "WHOOPSYNC_JWT_SECRET": JWT_SECRET,
                "WHOOPSYNC_TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                "WHOOPSYNC_WHOOP_RATE_LIMIT_PER_MINUTE": "1000000",
                "WHOOPSYNC_WHOOP_RATE_LIMIT_PER_DAY": "100000000",
                "WHOOPSYNC_THRESHOLD_SLEEP_SECONDS": "86400",
                "WHOOPSYNC_BACKFILL_DAYS": "2",
                "WHOOPSYNC_INBOX_SWEEP_SECONDS": "2",
                "WHOOPSYNC_INBOX_LEASE_SECONDS": "3",
                "WHOOPSYNC_RETRY_BACKOFF_SCALE": "0.05",
                "WHOOPSYNC_LOG_FORMAT": "json",
            }
            | {f"WHOOPSYNC_{k.upper()}": v for k, v in settings.items()}
        )
        webhook = procs.start("webhook", env)
        api = procs.start("api", env, port=api_port)
        worker = procs.start("worker", env, http=False)
        await wait_http(webhook)
        await wait_http(api)
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=10, limits=limits) as http:
            cluster = Cluster(pg, redis, procs, env, sim, webhook, api, worker, http)
            cluster.bouncer = bouncer
            users = (await http.get(f"{sim.url}/_sim/users")).json()["users"]
            for user in users:
                await cluster.connect(int(user["user_id"]))
            # Each drill starts from a settled cache: the members' backfills are done.
            assert await cluster.backfilled_within(60), worker.log_tail()
            yield cluster
    finally:
        procs.stop_all()
        if bouncer is not None:
            bouncer.stop()
        redis.stop()
        pg.remove()
