"""What every simulated WHOOP call goes through: counting, the rate limit, injected faults, and
(for the data API) the bearer token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from services.simulator.oauth import Grant
from services.simulator.state import Simulator

Endpoint = Callable[[Request], Awaitable[Response]]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson."""
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """WHOOP-style error body."""
    return json_response(
        {"error": _REASONS.get(status, "Error"), "message": message}, status, headers
    )


_REASONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}


class BadRequest(ValueError):
    """The control request's body is not a JSON object (answered 400)."""


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object ({} when the body is empty); BadRequest otherwise."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def sim_of(request: Request) -> Simulator:
    """The simulator behind this request."""
    sim: Simulator = request.app.state.sim
    return sim


async def _fault(request: Request, sim: Simulator, headers: dict[str, str]) -> Response | None:
    rule = sim.faults.pick(request.method, request.url.path)
    if rule is None:
        return None
    if rule.latency_ms:
        await asyncio.sleep(rule.latency_ms / 1000)
    if rule.timeout:
        await asyncio.sleep(rule.hang_seconds)
        return error(504, "injected timeout")
    if rule.status is not None:
        return error(rule.status, "injected fault", headers if rule.status == 429 else None)
    return None


def gated(template: str, *, limited: bool) -> Callable[[Endpoint], Endpoint]:
    """Wrap an endpoint: count it under `template`, apply the rate limit and faults."""

    def wrap(handler: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            sim = sim_of(request)
            minute = sim.limiter.minute_of(sim.clock.now_ms()) if limited else None
            sim.counters.record(template, minute)
            headers: dict[str, str] = {}
            response: Response | None = None
            if limited:
                verdict = sim.limiter.check()
                headers = verdict.headers
                if not verdict.allowed:
                    sim.counters.rate_limited += 1
                    response = error(429, "rate limit exceeded", headers)
            if response is None:
                response = await _fault(request, sim, headers)
            if response is None:
                response = await handler(request)
                response.headers.update(headers)
            sim.counters.by_status[response.status_code] += 1
            if limited:
                user_id = getattr(request.state, "whoop_user_id", None)
                sim.counters.answered(template, user_id, response.status_code)
            return response

        return endpoint

    return wrap


def bearer(request: Request, sim: Simulator, scope: str | None) -> Grant | Response:
    """The grant of the request's access token, or the 401 to answer."""
    header = request.headers.get("authorization", "")
    kind, _, token = header.partition(" ")
    grant = (
        sim.tokens.grant_for(token.strip(), sim.clock.now_ms())
        if kind.lower() == "bearer"
        else None
    )
    if grant is None:
        return error(401, "invalid or expired access token")
    if scope is not None and scope not in grant.scope.split():
        return error(401, f"token lacks scope {scope}")
    sim.counters.by_user[grant.user_id] += 1
    request.state.whoop_user_id = grant.user_id
    return grant
