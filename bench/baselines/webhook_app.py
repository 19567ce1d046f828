"""Baselines of webhook ingest.

`create_app`: a bare FastAPI endpoint that answers 204 and does nothing else.

`create_queueing_app`: the naive pipeline's receiver, the guide's design: check the signature
(base64 HMAC-SHA256 of the timestamp and the raw body), then put an arq job
`handle(user_id, type, id)` for the naive worker (`bench/baselines/worker.py`) on its queue and
answer 204. No inbox, no record of the event, no dedupe. Configured by BENCH_SECRET,
BENCH_REDIS_URL and BENCH_QUEUE.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq import create_pool
from arq.connections import RedisSettings
from fastapi import FastAPI, Request, Response


def create_app() -> FastAPI:
    """The bare baseline app (uvicorn --factory)."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhooks/whoop", status_code=204)
    async def webhook() -> Response:
        return Response(status_code=204)

    return app


def create_queueing_app() -> FastAPI:
    """The naive pipeline's receiver (uvicorn --factory)."""
    secret = os.environ["BENCH_SECRET"].encode()
    queue = os.environ.get("BENCH_QUEUE", "bench:baseline")
    redis = RedisSettings.from_dsn(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.jobs = await create_pool(redis)
        yield
        await app.state.jobs.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhooks/whoop", status_code=204)
    async def webhook(request: Request) -> Response:
        body = await request.body()
        stamp = request.headers.get("x-whoop-signature-timestamp", "")
        mac = hmac.new(secret, stamp.encode() + body, hashlib.sha256).digest()
        given = request.headers.get("x-whoop-signature", "")
        if not hmac.compare_digest(base64.b64encode(mac).decode(), given):
            return Response(status_code=401)
        event = json.loads(body)
        args = (int(event["user_id"]), event["type"], str(event["id"]))
        await request.app.state.jobs.enqueue_job("handle", *args, _queue_name=queue)
        return Response(status_code=204)

    return app
