"""schemathesis over the api's own /openapi.json, on both backends: every operation, positive and
negative cases, a bearer supplied, a connected user with cached data and the simulator as WHOOP.
No answer is a 5xx, every 4xx is in the error form, and every status is one the document lists."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import redis.asyncio as aioredis
import requests
import schemathesis
from hypothesis import given
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import create_app
from services.simulator.server import RunningSim, serve_app
from tests import connect_flow
from tests.fuzzing import CASES, fuzz_settings
from tests.services.api.conftest import auth, make_settings
from tests.tables import empty_all

EXAMPLES = 10  # per operation and mode: 180 cases a backend, about 15 s on a loaded machine
TYPES = ("recovery", "sleep", "cycle", "workout")


async def _connect(http: httpx.AsyncClient, user: uuid.UUID) -> None:
    """The connect flow through the api and the simulator, then one refresh per type (a cache)."""
    await connect_flow.connect(http, auth(user))
    for data_type in TYPES:
        read = await http.get(
            f"/api/v1/smart/{data_type}", params={"force_refresh": "true"}, headers=auth(user)
        )
        assert read.status_code == 200, read.text


def _check(operation: Any, response: Any) -> None:
    documented = set(operation.definition.raw.get("responses", {}))
    status = response.status_code
    text = response.content[:300].decode(errors="replace")  # the export's zip is binary
    where = f"{operation.method.upper()} {operation.path} -> {status}: {text}"
    assert status < 500, where
    assert str(status) in documented or "default" in documented, where
    if status >= 400:
        body = response.json()
        assert body["status"] == "error", where
        assert isinstance(body["error"]["code"], str), where
        assert isinstance(body["error"]["message"], str), where


def _run_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    headers: dict[str, str],
    session: requests.Session,
) -> int:
    """One operation in one generation mode; how many cases ran."""
    ran = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @fuzz_settings(EXAMPLES)
    def run(case: Any) -> None:
        nonlocal ran
        ran += 1
        response = case.call(
            base_url=base_url, session=session, headers={**(case.headers or {}), **headers}
        )
        _check(operation, response)

    run()
    return ran


def _fuzz(document: dict[str, Any], base_url: str, reader: uuid.UUID, victim: uuid.UUID) -> int:
    """Every operation in both generation modes; how many cases ran."""
    schema = schemathesis.openapi.from_dict(document)
    ran, session = 0, requests.Session()  # one keep-alive connection for every case
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"our document does not load: {result}"
        operation = result.ok()
        # DELETE /connection ends the connection: it acts for a second user, so that the reads
        # keep a connected user with a cache.
        user = victim if operation.method.upper() == "DELETE" else reader
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            ran += _run_operation(operation, mode, base_url, auth(user), session)
    session.close()
    return ran


async def test_the_api_answers_generated_requests_as_documented(
    backend: str,
    database_url: str,
    database_engine: AsyncEngine,
    redis_url: str,
    redis: aioredis.Redis,
    whoop_sim: RunningSim,
) -> None:
    settings = make_settings(
        database_url,
        redis_url,
        whoop_api_base_url=whoop_sim.api_base_url,
        whoop_oauth_base_url=whoop_sim.oauth_base_url,
    )
    reader, victim = uuid.uuid4(), uuid.uuid4()
    try:
        async with serve_app(create_app(settings)) as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
                await _connect(http, reader)
                await _connect(http, victim)
                document = (await http.get("/openapi.json")).json()
            ran = await asyncio.to_thread(_fuzz, document, base_url, reader, victim)
    finally:
        # Committed over real HTTP: connections, records and the purge's tombstones of simulated
        # ids that later tests see again.
        async with database_engine.begin() as connection:
            await empty_all(connection)
    CASES[f"schemathesis api [{backend}]"] += ran
    operations = sum(len(item) for item in document["paths"].values())
    assert ran >= operations * 2  # every operation in both modes
