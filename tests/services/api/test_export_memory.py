"""The export keeps an api process's memory flat: `whoop-sync api` as a real process, its peak
RSS (VmHWM, reset before each download through /proc/PID/clear_refs) over an export of 100,000
records against one of 1,000, in each format, on both backends."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from common.crypto import TokenCipher
from common.db.repositories import KINDS, ConnectionRepository
from common.db.types import utcnow
from common.types import DataType
from services.simulator.server import free_port
from tests.common.db import samples
from tests.services.api.conftest import KEY, auth, make_settings
from tests.services.worker.test_command import CLI, cli_env, stop
from tests.tables import empty_all

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(sys.platform != "linux", reason="reads peak RSS from Linux's /proc"),
]

SMALL, BIG = 1_000, 100_000
# Loading the records instead of streaming them would add well over 100 MB (the JSON text of
# 100,000 records alone); streamed, the big download peaks where the small one does.
FLAT = 1.25
STARTUP = 120.0  # a loaded machine takes its time to import the app
T0 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def _objects(data_type: DataType, whoop_user: int, index: int) -> dict[str, Any]:
    moment = T0 - timedelta(hours=index)
    cycle_id = whoop_user * 1_000_000 + index
    if data_type is DataType.CYCLE:
        return samples.cycle(cycle_id=cycle_id, start=moment, whoop_user_id=whoop_user)
    if data_type is DataType.SLEEP:
        return samples.sleep(start=moment, cycle_id=cycle_id, whoop_user_id=whoop_user)
    if data_type is DataType.RECOVERY:
        return samples.recovery(
            cycle_id=cycle_id, sleep_id=uuid.uuid4(), created_at=moment, whoop_user_id=whoop_user
        )
    return samples.workout(start=moment, whoop_user_id=whoop_user)


async def bulk_seed(engine: AsyncEngine, user: uuid.UUID, whoop_user: int, count: int) -> None:
    """A connection and `count` records spread over the four types, inserted straight into the
    tables in large batches (no guarded upsert, no changes: only the export reads them)."""
    now = utcnow()
    async with AsyncSession(engine) as connection:
        cipher = TokenCipher(KEY)
        await ConnectionRepository(connection).save(
            user_id=user,
            whoop_user_id=whoop_user,
            access_token_enc=cipher.encrypt("access"),
            refresh_token_enc=cipher.encrypt("refresh"),
            expires_at=now + timedelta(days=1),
            scopes="read:recovery read:cycles read:workout read:sleep offline",
        )
        for data_type in DataType:
            kind = KINDS[data_type]
            rows = []
            for index in range(count // 4):
                obj = _objects(data_type, whoop_user, index)
                data = orjson.dumps(obj).decode()
                rows.append({**kind.columns(obj), "user_id": user, "data": data, "synced_at": now})
                if len(rows) == 5_000:
                    await connection.execute(insert(kind.table), rows)
                    rows = []
            if rows:
                await connection.execute(insert(kind.table), rows)
        await connection.commit()


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


async def peak_of_export(
    http: httpx.AsyncClient, pid: int, user: uuid.UUID, fmt: str, into: Path
) -> int:
    """The process's peak RSS (kB) while it serves one export, written to `into` as it comes."""
    await asyncio.to_thread(Path(f"/proc/{pid}/clear_refs").write_text, "5")  # peak := current
    async with http.stream(
        "GET", "/api/v1/smart/export", params={"format": fmt}, headers=auth(user)
    ) as answer:
        assert answer.status_code == 200
        with into.open("wb") as out:
            async for chunk in answer.aiter_raw():
                out.write(chunk)
    return _memory(pid)["VmHWM"]


def _records_in(path: Path, fmt: str) -> int:
    if fmt == "jsonl":
        with path.open("rb") as lines:
            return sum(1 for _ in lines)
    with zipfile.ZipFile(path) as archive:
        total = 0
        for name in archive.namelist():
            with archive.open(name) as member:
                total += sum(1 for _ in member) - 1  # the header
        return total


@pytest.fixture
async def engine(
    backend: str, pg_engine: AsyncEngine, sqlite_engine: AsyncEngine
) -> AsyncIterator[AsyncEngine]:
    """The backend's test database, emptied before and after (100,000 rows must not linger)."""
    chosen = pg_engine if backend == "postgresql" else sqlite_engine
    async with chosen.begin() as connection:
        await empty_all(connection)
    yield chosen
    async with chosen.begin() as connection:
        await empty_all(connection)


@pytest.fixture
async def api_process(
    backend: str,
    pg_url: str,
    sqlite_url: str,
    redis_url: str,
    redis: aioredis.Redis,
    tmp_path: Path,
) -> AsyncIterator[tuple[int, httpx.AsyncClient]]:
    """`whoop-sync api` on a free port: its pid and a client."""
    settings = make_settings(pg_url if backend == "postgresql" else sqlite_url, redis_url)
    port = free_port()
    log = (tmp_path / "api.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        CLI, "api", "--port", str(port), env=cli_env(settings), cwd=tmp_path, stdout=log, stderr=log
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            async with asyncio.timeout(STARTUP):
                while True:
                    try:
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        assert process.returncode is None, f"exited with {process.returncode}"
                    await asyncio.sleep(0.1)
            yield process.pid, http
    finally:
        await stop(process)
        log.close()


async def test_a_100000_record_export_peaks_where_a_1000_record_one_does(
    engine: AsyncEngine, api_process: tuple[int, httpx.AsyncClient], tmp_path: Path
) -> None:
    small, big = uuid.uuid4(), uuid.uuid4()
    clock = time.monotonic()
    await bulk_seed(engine, small, 7001, SMALL)
    await bulk_seed(engine, big, 7002, BIG)
    print(f"seeded {SMALL + BIG} records in {time.monotonic() - clock:.1f} s")
    pid, http = api_process
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"export.{fmt}"
        await peak_of_export(http, pid, small, fmt, out)  # warm-up: first-use imports, caches

        small_peak = await peak_of_export(http, pid, small, fmt, out)
        assert _records_in(out, fmt) == SMALL
        clock = time.monotonic()
        big_peak = await peak_of_export(http, pid, big, fmt, out)
        took = time.monotonic() - clock
        assert _records_in(out, fmt) == BIG

        ratio = big_peak / small_peak
        print(f"{fmt}: peak RSS {small_peak} kB ({SMALL}), {big_peak} kB ({BIG}, {took:.1f} s)")
        assert ratio < FLAT, f"{fmt}: {big_peak} kB for {BIG} records, {small_peak} kB for {SMALL}"
