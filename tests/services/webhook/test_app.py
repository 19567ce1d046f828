"""The webhook receiver (SPEC §3.3): verify, record, enqueue; every error in the error form."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.config import ConfigError, Settings
from common.db.models import WebhookEvent
from common.types import EventStatus
from services.simulator.server import free_port
from services.webhook.app import create_app
from tests.common.sync.harness import make_settings, signed

PATH = "/webhooks/whoop"
ARQ_QUEUE = "arq:queue"


@contextlib.asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hook.test") as http:
            yield http


@pytest.fixture
async def http(
    pg_url: str, redis_url: str, redis: aioredis.Redis
) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(make_settings(pg_url, redis_url, "http://127.0.0.1:9")) as client:
        yield client


def _event(**overrides: Any) -> dict[str, Any]:
    body = {
        "user_id": 10129,
        "id": str(uuid.uuid4()),
        "type": "sleep.updated",
        "trace_id": f"trace-{uuid.uuid4()}",
    }
    return body | overrides


async def _post(http: httpx.AsyncClient, body: dict[str, Any], **sign: Any) -> httpx.Response:
    raw, headers = signed(body, **sign)
    return await http.post(PATH, content=raw, headers=headers)


async def _recorded(engine: AsyncEngine, trace_id: str) -> list[WebhookEvent]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(WebhookEvent).where(WebhookEvent.trace_id == trace_id)
        )
        return list(rows.all())  # type: ignore[arg-type]


def _error_code(response: httpx.Response) -> str:
    body = response.json()
    assert body["status"] == "error"
    assert body["error"]["message"]
    return str(body["error"]["code"])


async def test_records_and_enqueues_a_new_event(
    http: httpx.AsyncClient, pg_engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    body = _event()
    started = time.monotonic()
    response = await _post(http, body)
    assert response.status_code == 204
    assert time.monotonic() - started < 1.0
    (event,) = await _recorded(pg_engine, body["trace_id"])
    assert event.status == EventStatus.PENDING.value
    assert event.enqueued_at is not None
    assert await redis.zcard(ARQ_QUEUE) == 1


async def test_a_duplicate_trace_id_is_acknowledged_and_not_enqueued_again(
    http: httpx.AsyncClient, pg_engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    body = _event()
    for _ in range(3):
        assert (await _post(http, body)).status_code == 204
    assert len(await _recorded(pg_engine, body["trace_id"])) == 1
    assert await redis.zcard(ARQ_QUEUE) == 1


async def test_an_unknown_type_is_recorded_as_ignored_and_not_enqueued(
    http: httpx.AsyncClient, pg_engine: AsyncEngine, redis: aioredis.Redis
) -> None:
    body = _event(type="body_measurement.updated")
    assert (await _post(http, body)).status_code == 204
    (event,) = await _recorded(pg_engine, body["trace_id"])
    assert event.status == EventStatus.IGNORED.value
    assert await redis.zcard(ARQ_QUEUE) == 0


async def test_rejects_a_wrong_signature(http: httpx.AsyncClient, pg_engine: AsyncEngine) -> None:
    body = _event()
    response = await _post(http, body, secret="not-the-secret")
    assert response.status_code == 401
    assert _error_code(response) == "invalid_signature"
    assert await _recorded(pg_engine, body["trace_id"]) == []


async def test_rejects_a_missing_signature(http: httpx.AsyncClient, pg_engine: AsyncEngine) -> None:
    body = _event()
    raw, headers = signed(body)
    del headers["x-whoop-signature"]
    response = await http.post(PATH, content=raw, headers=headers)
    assert response.status_code == 401
    assert _error_code(response) == "invalid_signature"
    assert await _recorded(pg_engine, body["trace_id"]) == []


async def test_rejects_a_stale_timestamp(http: httpx.AsyncClient, pg_engine: AsyncEngine) -> None:
    body = _event()
    response = await _post(http, body, at_ms=int((time.time() - 301) * 1000))
    assert response.status_code == 401
    assert await _recorded(pg_engine, body["trace_id"]) == []


async def test_rejects_a_body_that_is_not_json(http: httpx.AsyncClient) -> None:
    raw = b"user_id=1&type=sleep.updated"
    _, headers = signed({})
    stamp = headers["x-whoop-signature-timestamp"]
    from services.simulator.webhooks import signature

    headers["x-whoop-signature"] = signature("pipeline-secret", stamp, raw)
    response = await http.post(PATH, content=raw, headers=headers)
    assert response.status_code == 400
    assert _error_code(response) == "invalid_payload"


@pytest.mark.parametrize(
    "change",
    [{"user_id": "10129"}, {"user_id": True}, {"type": None}, {"trace_id": ""}, {"id": 5}],
)
async def test_rejects_a_body_not_of_the_payloads_shape(
    http: httpx.AsyncClient, change: dict[str, Any]
) -> None:
    response = await _post(http, _event(**change))
    assert response.status_code == 400
    assert _error_code(response) == "invalid_payload"


async def test_rejects_a_declared_length_over_64_kib(http: httpx.AsyncClient) -> None:
    raw, headers = signed(_event(padding="x" * 70_000))
    response = await http.post(PATH, content=raw, headers=headers)
    assert response.status_code == 413
    assert _error_code(response) == "payload_too_large"


async def test_rejects_a_streamed_body_over_64_kib(http: httpx.AsyncClient) -> None:
    raw, headers = signed(_event(padding="x" * 70_000))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 8192):
            yield raw[start : start + 8192]

    response = await http.post(PATH, content=chunks(), headers=headers)  # no Content-Length
    assert response.status_code == 413


async def test_accepts_a_body_just_under_64_kib(http: httpx.AsyncClient) -> None:
    body = _event(padding="")
    size = len(signed(body)[0])
    body["padding"] = "x" * (64 * 1024 - size)
    raw, headers = signed(body)
    assert len(raw) == 64 * 1024
    assert (await http.post(PATH, content=raw, headers=headers)).status_code == 204


def test_refuses_to_start_without_redis(pg_url: str) -> None:
    with pytest.raises(ConfigError, match="WHOOPSYNC_REDIS_URL"):
        create_app(make_settings(pg_url, None, "http://127.0.0.1:9"))


async def test_answers_503_when_the_event_cannot_be_recorded(redis_url: str) -> None:
    dead_db = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"
    async with _client(make_settings(dead_db, redis_url, "http://127.0.0.1:9")) as http:
        response = await _post(http, _event())
        assert response.status_code == 503
        assert _error_code(response) == "unavailable"
        ready = await http.get("/readyz")
        assert ready.status_code == 503


async def test_redis_down_still_records_and_acknowledges(
    pg_url: str, pg_engine: AsyncEngine
) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    async with _client(make_settings(pg_url, dead_redis, "http://127.0.0.1:9")) as http:
        body = _event()
        started = time.monotonic()
        assert (await _post(http, body)).status_code == 204
        assert time.monotonic() - started < 1.0
        (event,) = await _recorded(pg_engine, body["trace_id"])
        assert event.status == EventStatus.PENDING.value
        assert event.enqueued_at is None  # the sweeper's sign to enqueue it later
        assert (await http.get("/readyz")).status_code == 503


async def test_health_readiness_and_metrics(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    await _post(http, _event())
    metrics = await http.get("/metrics")
    assert 'whoopsync_webhooks_total{outcome="accepted"}' in metrics.text


async def test_other_errors_use_the_error_form(http: httpx.AsyncClient) -> None:
    response = await http.get(PATH)
    assert response.status_code == 405
    assert _error_code(response) == "method_not_allowed"


@pytest.mark.parametrize("timestamp", ["²", "¹²³"])
async def test_rejects_a_timestamp_of_digits_that_are_not_ascii(
    http: httpx.AsyncClient, pg_engine: AsyncEngine, timestamp: str
) -> None:
    """Header bytes are read as Latin-1: b'\\xb2' arrives as '²', which str.isdigit() accepts."""
    body = _event()
    raw, headers = signed(body)
    sent = {name.encode(): value.encode() for name, value in headers.items()}
    sent[b"x-whoop-signature-timestamp"] = timestamp.encode("latin-1")
    response = await http.post(PATH, content=raw, headers=sent)
    assert response.status_code == 401
    assert _error_code(response) == "invalid_signature"
    assert await _recorded(pg_engine, body["trace_id"]) == []


async def test_unknown_route_is_404_in_the_error_form(http: httpx.AsyncClient) -> None:
    response = await http.get("/webhooks/nope")
    assert response.status_code == 404
    assert _error_code(response) == "not_found"


async def test_unexpected_failure_is_500_in_the_error_form(
    pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("services.webhook.app.verify", boom)
    app = create_app(make_settings(pg_url, redis_url, "http://127.0.0.1:9"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://hook.test") as http:
            response = await _post(http, _event())
    assert response.status_code == 500
    assert response.json() == {
        "status": "error",
        "error": {"code": "internal_error", "message": "Internal server error"},
    }


async def test_openapi_documents_every_answer_in_the_error_form(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    responses = document["paths"][PATH]["post"]["responses"]
    assert set(responses) == {"204", "400", "401", "413", "503"}
    for status in ("400", "401", "413", "503"):
        content = responses[status]["content"]["application/json"]
        assert content["schema"]["$ref"].endswith("/ErrorResponse")
        assert content["example"]["status"] == "error"
