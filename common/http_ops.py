"""What every HTTP process serves besides its own routes: `/healthz`, `/readyz`, `/metrics`, and the
error envelope `{"status": "error", "error": {"code", "message"}}` for every error answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.db.repositories.connection_setup import ping

__all__ = [
    "Check",
    "error_response",
    "install_error_handlers",
    "ops_router",
    "ping_database",
    "ping_redis",
]

log = structlog.get_logger(__name__)

# A readiness check: raises (or times out) when its dependency does not answer.
Check = Callable[[Request], Awaitable[object]]
CHECK_TIMEOUT = 2.0
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def error_response(status_code: int, code: str, message: str) -> JSONResponse:
    """An error answer in the product's one error form."""
    return JSONResponse(
        {"status": "error", "error": {"code": code, "message": message}}, status_code=status_code
    )


async def ping_database(engine: AsyncEngine) -> None:
    """Run `SELECT 1`."""
    async with engine.connect() as connection:
        await ping(connection)


async def ping_redis(redis: Redis) -> None:
    """Send PING."""
    await redis.ping()


async def _run(check: Check, request: Request) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await check(request)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def ops_router(checks: Mapping[str, Check]) -> APIRouter:
    """`/healthz` (alive), `/readyz` (every check answers, else 503) and `/metrics` (Prometheus)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> Response:
        names = list(checks)
        results = await asyncio.gather(*(_run(checks[n], request) for n in names))
        states = dict(zip(names, results, strict=True))
        failing = [name for name, state in states.items() if state != "ok"]
        if failing:
            response = error_response(503, "not_ready", f"not answering: {', '.join(failing)}")
            return response
        return JSONResponse({"status": "ok", "checks": states})

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the error form: HTTP errors (unknown routes, wrong methods), request
    validation (422 `validation_error`) and unhandled exceptions (500 `internal_error`)."""

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail))

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(422, "validation_error", f"{where}: {first.get('msg', 'invalid')}")

    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.error("http.unhandled_error", error_type=type(exc).__name__, exc_info=exc)
        return error_response(500, "internal_error", "Internal server error")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    # Anything else is a 500 in the error form too (Starlette still re-raises it for the server).
    app.add_exception_handler(Exception, unexpected)
