"""Baseline of webhook ingest: a bare FastAPI endpoint that answers 204 and does nothing else."""

from __future__ import annotations

from fastapi import FastAPI, Response


def create_app() -> FastAPI:
    """The baseline app (uvicorn --factory)."""
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/webhooks/whoop", status_code=204)
    async def webhook() -> Response:
        return Response(status_code=204)

    return app
