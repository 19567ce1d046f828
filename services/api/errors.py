"""The error form `{"status": "error", "error": {"code", "message"}}` for every failure of the app."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from common.db.resilient import OUTAGE_TYPES, is_outage

log = structlog.get_logger()

DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "whoop_unavailable",
    503: "unavailable",
}


class ApiError(Exception):
    """An answer in the error form, raised from routes and dependencies."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """JSON rendered by orjson (aware UTC datetimes come out as `…+00:00`, as in the guide)."""
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """One answer in the error form."""
    body = {"status": "error", "error": {"code": code, "message": message}}
    return json_response(body, status, headers)


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


# What FastAPI raises for a body it cannot even decode (bytes that are not UTF-8): the same
# mistake as malformed JSON, so the same documented answer (422).
_UNPARSABLE_BODY = "There was an error parsing the body"


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
        return error_response(422, "validation_error", "body: not valid JSON (UTF-8 expected)")
    code = DEFAULT_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = "No such endpoint"
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, message, headers)


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg"))


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    message = "; ".join(_describe(e) for e in exc.errors()) or "invalid request"
    return error_response(422, "validation_error", message)


async def _database_error(request: Request, exc: Exception) -> Response:
    if not is_outage(exc):
        return await _unexpected(request, exc)
    log.warning("api.database_unavailable", error_type=type(exc).__name__)
    return error_response(503, "unavailable", "The database is unavailable; try again shortly")


async def _unexpected(_request: Request, exc: Exception) -> Response:
    log.error("api.unhandled_error", error_type=type(exc).__name__, exc_info=exc)
    return error_response(500, "internal_error", "Internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of the app, unknown routes and bad methods included, use the error form."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # The database being away is a 503, not a bug: handled here, so it is not re-raised as a 500.
    for outage in OUTAGE_TYPES:
        app.add_exception_handler(outage, _database_error)
    app.add_exception_handler(Exception, _unexpected)
