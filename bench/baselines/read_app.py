"""Baseline of the cached read: bare FastAPI + asyncpg doing the same SELECT and answering the
same JSON as `GET /api/v1/smart/sleep` from the cache.

It is the lean version on purpose: no auth, no sync-log lookup, the stored JSON text spliced into
the answer, so the product is compared with the least work that produces the same bytes.
Configured by BENCH_PG_DSN and BENCH_USER_ID; the metadata's sync time is read once at start-up.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import orjson
from fastapi import FastAPI, Query, Request, Response

SELECT = "SELECT data FROM whoop_sleep WHERE user_id = $1 ORDER BY start DESC, id DESC LIMIT $2"
THRESHOLD_SECONDS = 7200


def create_app() -> FastAPI:
    """The baseline app (uvicorn --factory)."""
    dsn = os.environ["BENCH_PG_DSN"]
    user_id = uuid.UUID(os.environ["BENCH_USER_ID"])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        app.state.synced_at = datetime.now(UTC)
        yield
        await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/smart/sleep")
    async def sleep(request: Request, limit: int = Query(30, ge=1, le=100)) -> Response:
        rows = await request.app.state.pool.fetch(SELECT, user_id, limit)
        synced_at: datetime = request.app.state.synced_at
        age = (datetime.now(UTC) - synced_at).total_seconds()
        metadata = {
            "source": "cache",
            "record_count": len(rows),
            "last_sync_at": synced_at.isoformat(),
            "time_since_sync_seconds": int(age),
            "time_since_sync_hours": round(age / 3600, 2),
            "threshold_seconds": THRESHOLD_SECONDS,
            "cached_enough": True,
            "note": "✓ Using cached data (fresh enough)",
        }
        body = b"".join(
            (
                b'{"status":"success","data":[',
                ",".join(row["data"] for row in rows).encode(),
                b'],"metadata":',
                orjson.dumps(metadata),
                b"}",
            )
        )
        return Response(body, media_type="application/json")

    return app
