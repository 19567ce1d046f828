"""The webhook receiver: verify, record, enqueue (SPEC §3.3).

Three steps, in this order: the signature over the raw bytes (401 otherwise, nothing recorded), the
event recorded in the inbox (on conflict of `trace_id` nothing; 503 when it cannot be recorded, so that
WHOOP delivers it again), and the hand-off to the queue only for a new row. A queue that is down
costs nothing but time: the event is recorded and the sweeper enqueues it later.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import ValidationError

from common import tracing
from common.config import Settings
from common.db.engine import create_session_factory
from common.db.types import utcnow
from common.http_ops import (
    error_response,
    install_error_handlers,
    ops_router,
    ping_database,
    ping_redis,
)
from common.http_schemas import error_example
from common.metrics import WEBHOOKS
from common.queue import ArqQueue, arq_redis
from common.sync import refusals as refusals_note
from common.sync.context import engine_for
from common.types import EventStatus
from common.whoop.signature import InvalidSignature, verify
from services.webhook.deps import Refusals, WebhookState
from services.webhook.schemas import WebhookPayload

log = structlog.get_logger(__name__)

MAX_BODY = 64 * 1024
# How long a 503 may wait for its refusal to be noted in Redis.
REFUSAL_NOTE_SECONDS = 0.5
PATH = "/webhooks/whoop"
RESPONSES: dict[int | str, dict[str, Any]] = {
    204: {"description": "Recorded (new, duplicate `trace_id`, unknown type or unknown user)"},
    400: error_example("invalid_payload", "user_id: Input should be a valid integer"),
    401: error_example("invalid_signature", "missing or invalid signature"),
    413: error_example("payload_too_large", "body over 64 KiB"),
    503: error_example("unavailable", "the event could not be recorded"),
}


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past `limit` (at most limit + 1 bytes are kept)."""
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk[: limit + 1 - len(body)]
        if len(body) > limit:
            return None
    return bytes(body)


def _rejected(status: int, code: str, message: str, outcome: str) -> Response:
    WEBHOOKS.labels(outcome).inc()
    log.warning("webhook.rejected", code=code)
    return error_response(status, code, message)


async def _record(state: WebhookState, payload: WebhookPayload, body: bytes) -> Response:
    try:
        event_id, status = await state.intake.record(
            trace_id=payload.trace_id,
            event_type=payload.type,
            whoop_user_id=payload.user_id,
            record_id=payload.id,
            payload=body.decode(),
        )
    except Exception:
        log.exception("webhook.unrecorded")
        await _note_refusal(state.refusals)
        return _rejected(503, "unavailable", "the event could not be recorded", "unavailable")
    if state.refusals.unwritten is not None:
        await _write_refusal(state)
    if event_id is None:
        WEBHOOKS.labels("duplicate").inc()
        log.debug("webhook.duplicate")
    else:
        WEBHOOKS.labels("accepted").inc()
        # debug: one line per delivery is most of a request's cost at WHOOP's bursts; failures
        # and refusals stay warnings, and the metric counts every outcome.
        log.debug("webhook.recorded", event_id=event_id, status=status.value)
        if status is EventStatus.PENDING and state.queue is not None:
            await state.intake.hand_off(event_id)
    return Response(status_code=204)


async def _note_refusal(refusals: Refusals) -> None:
    """Remember a refusal until it is written: in memory, and in Redis, so that it outlives this
    process (the worker's sweep writes it when this process cannot)."""
    at = refusals.unwritten = utcnow()
    if refusals.redis is None:
        return
    try:
        async with asyncio.timeout(REFUSAL_NOTE_SECONDS):
            await refusals_note.remember(refusals.redis, at)
    except Exception as exc:  # Redis away too: the memory alone, until the next event recorded
        log.warning("webhook.refusal_unnoted", error=type(exc).__name__)


async def _write_refusal(state: WebhookState) -> None:
    """Tell every process that an event was refused: the channel confirms nothing for an hour.

    Kept in memory (and Redis) while the database is away, and written with the next event
    recorded.
    """
    at = state.refusals.unwritten
    if at is None:
        return
    try:
        async with state.session_factory() as session:
            await refusals_note.write(session, at)
            await session.commit()
    except Exception as exc:
        log.warning("webhook.refusal_unwritten", error=type(exc).__name__)
        return
    if state.refusals.unwritten == at:
        state.refusals.unwritten = None
    if state.refusals.redis is not None:
        try:
            await refusals_note.forget(state.refusals.redis, at)
        except Exception as exc:  # the worker's sweep writes it once more: harmless
            log.warning("webhook.refusal_note_kept", error=type(exc).__name__)


async def receive(request: Request) -> Response:
    """`POST /webhooks/whoop`: 204 for every verified event, new or not."""
    # The state is read off the app, not injected: FastAPI's dependency solving cost more per
    # delivery than verifying it (bench 2's storm), and this route has nothing else to inject.
    state: WebhookState = request.app.state.webhook
    body = await _read_limited(request, MAX_BODY)
    if body is None:
        return _rejected(413, "payload_too_large", "body over 64 KiB", "invalid")
    try:
        verify(
            state.secret,
            request.headers.get("x-whoop-signature-timestamp"),
            body,
            request.headers.get("x-whoop-signature"),
            tolerance_seconds=state.tolerance_seconds,
        )
    except InvalidSignature as exc:
        log.warning("webhook.signature_refused", failure=exc.failure.value)
        return _rejected(401, "invalid_signature", "missing or invalid signature", "rejected")
    try:
        payload = WebhookPayload.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return _rejected(400, "invalid_payload", f"{where}: {first['msg']}", "invalid")
    with structlog.contextvars.bound_contextvars(
        trace_id=payload.trace_id, user_id=payload.user_id, event_type=payload.type
    ):
        return await _record(state, payload, body)


# The route reads the raw bytes (the signature covers them exactly), so /docs learns the body and
# the headers from here rather than from the handler's signature.
OPENAPI_EXTRA: dict[str, Any] = {
    "parameters": [
        {
            "name": "X-WHOOP-Signature",
            "in": "header",
            "required": True,
            "description": "base64(HMAC-SHA256(client secret, timestamp + raw body))",
            "schema": {"type": "string"},
        },
        {
            "name": "X-WHOOP-Signature-Timestamp",
            "in": "header",
            "required": True,
            "description": "Milliseconds since the epoch; within WEBHOOK_TOLERANCE_SECONDS of now",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        },
    ],
    "requestBody": {
        "required": True,
        "description": "WHOOP's v2 webhook payload (at most 64 KiB)",
        "content": {
            "application/json": {
                "schema": WebhookPayload.model_json_schema(),
                "example": {
                    "user_id": 10129,
                    "id": "ecfc6a15-4661-442f-a9a4-f160dd7afae8",
                    "type": "sleep.updated",
                    "trace_id": "d3c0f5a1-7e2b-4c9a-9f1e-2b3c4d5e6f70",
                },
            }
        },
    },
}


def webhook_router() -> APIRouter:
    """The webhook route alone, for `serve` to mount next to the API (it sets `app.state.webhook`)."""
    router = APIRouter()
    router.add_api_route(
        PATH,
        receive,
        methods=["POST"],
        status_code=204,
        response_class=Response,
        responses=RESPONSES,
        summary="A WHOOP webhook: verified, recorded, then enqueued",
        openapi_extra=OPENAPI_EXTRA,
    )
    return router


def create_app(settings: Settings) -> FastAPI:
    """The webhook process: its route, `/healthz`, `/readyz`, `/metrics`."""
    # A separate webhook process hands events to a separate worker: only Redis connects them.
    settings.require("whoop_client_secret", "redis_url")
    assert settings.whoop_client_secret is not None  # checked by require()
    assert settings.redis_url is not None
    secret = settings.whoop_client_secret.get_secret_value().encode()
    redis_url = settings.redis_url
    tracing.configure("webhook")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_for(settings)
        redis = arq_redis(redis_url)
        app.state.redis = redis
        app.state.webhook = WebhookState(
            secret=secret,
            tolerance_seconds=settings.webhook_tolerance_seconds,
            engine=engine,
            session_factory=create_session_factory(engine),
            queue=ArqQueue(redis),
            refusals=Refusals(redis=redis),
        )
        try:
            yield
        finally:
            await redis.aclose()
            await engine.dispose()

    app = FastAPI(title="whoop-sync webhook", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    checks = {
        "database": lambda r: ping_database(r.app.state.webhook.engine),
        "redis": lambda r: ping_redis(r.app.state.redis),
    }
    app.include_router(ops_router(checks))
    app.include_router(webhook_router())
    tracing.instrument_app(app)
    return app
