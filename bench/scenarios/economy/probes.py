"""What the day watches in the product's database while it runs: announced changes reaching the
cache, and each closed cycle's final values reaching the change feed."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import asyncpg

from bench.infra import pg_connect

TABLES = {"sleep": ("whoop_sleep", "id"), "workout": ("whoop_workout", "id")}
TABLES["recovery"] = ("whoop_recovery", "cycle_id")


class _Poller:
    """Polls every half second until stopped, once more at the end."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Poll until stopped."""
        conn = await pg_connect(self.dsn)
        try:
            await self.prepare(conn)
            while not self._stop.is_set():
                await self.poll(conn)
                await asyncio.sleep(0.5)
            await self.poll(conn)
        finally:
            await conn.close()

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Before the first look."""

    async def poll(self, conn: asyncpg.Connection) -> None:
        """One look."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop after one last poll."""
        self._stop.set()


class FreshnessProbe(_Poller):
    """Samples announced changes and waits for the cache to hold them: the first `synced_at` (a
    write, or a fetch noted after the change) at or after the change is the moment it was readable."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.waiting: dict[str, dict[Any, float]] = {kind: {} for kind in TABLES}
        self.lags: list[float] = []

    def add(self, kind: str, key: str, changed_at: float) -> None:
        """Wait for this record's version of `changed_at` (epoch seconds)."""
        typed: Any = int(key) if kind == "recovery" else uuid.UUID(key)
        self.waiting[kind].setdefault(typed, changed_at)

    async def poll(self, conn: asyncpg.Connection) -> None:
        """Note every sampled change the cache now holds."""
        for kind, waiting in self.waiting.items():
            if not waiting:
                continue
            table, key = TABLES[kind]
            rows = await conn.fetch(
                f"SELECT {key} AS k, synced_at FROM {table} WHERE {key} = ANY($1)",  # noqa: S608
                list(waiting),
            )
            for row in rows:
                changed_at = waiting[row["k"]]
                synced = row["synced_at"].timestamp()
                if synced >= changed_at:
                    self.lags.append(synced - changed_at)
                    del waiting[row["k"]]

    @property
    def unresolved(self) -> int:
        """Sampled changes never seen in the cache."""
        return sum(len(w) for w in self.waiting.values())


_NEW_CYCLE_CHANGES = """
SELECT seq, record_id, data FROM whoop_change
WHERE seq > $1 AND data_type = 'cycle' ORDER BY seq LIMIT 5000
"""


class CycleFeedProbe(_Poller):
    """Waits for each closed cycle's final values (its `end`) to appear in the change feed: when
    a night's sleep closes a member's cycle, WHOOP sends no cycle webhook; the sleep's own
    processing must bring the closed cycle to the feed."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.closed: dict[str, str] = {}  # cycle id -> the sleep that closed it
        self.seen: dict[str, float] = {}  # cycle id -> when its final values were in the feed
        self._after = 0

    def add(self, cycle_id: str, sleep_id: str) -> None:
        """Wait for this cycle, closed by this night's sleep."""
        self.closed.setdefault(cycle_id, sleep_id)

    async def prepare(self, conn: asyncpg.Connection) -> None:
        """Ignore the feed's changes so far (set-up, backfills)."""
        self._after = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM whoop_change"))

    async def poll(self, conn: asyncpg.Connection) -> None:
        """Read the feed's new cycle changes; note closed cycles that now carry their end."""
        while True:
            rows = await conn.fetch(_NEW_CYCLE_CHANGES, self._after)
            now = time.time()
            for row in rows:
                self._after = max(self._after, int(row["seq"]))
                cycle_id = str(row["record_id"])
                waited = cycle_id in self.closed and cycle_id not in self.seen
                if waited and row["data"] and json.loads(row["data"]).get("end"):
                    self.seen[cycle_id] = now
            if len(rows) < 5000:
                return
