"""WHOOP's v2 data API under `/developer`: collections, records by id, cycle sleep and recovery,
profile, body measurement, revoking access, and the v1 → v2 activity id mapping."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.simulator.clock import parse_ms
from services.simulator.gate import bearer, error, gated, json_response, sim_of
from services.simulator.oauth import Grant
from services.simulator.records import BadCursor, Body, UserData
from services.simulator.state import Simulator

DEFAULT_LIMIT, MAX_LIMIT = 10, 25
SCOPES = {"cycle": "read:cycles", "sleep": "read:sleep", "recovery": "read:recovery"}
SCOPES["workout"] = "read:workout"
UserHandler = Callable[[Request, Simulator, UserData], Response]


class BadParam(ValueError):
    """A malformed query or path parameter (400)."""


def _user_route(path: str, scope: str | None, handler: UserHandler, method: str = "GET") -> Route:
    @gated(f"{method} {path}", limited=True)
    async def endpoint(request: Request) -> Response:
        sim = sim_of(request)
        grant = bearer(request, sim, scope)
        if not isinstance(grant, Grant):
            return grant
        try:
            return handler(request, sim, sim.world.data(grant.user_id))
        except BadParam as exc:
            return error(400, str(exc))

    return Route(f"/developer{path}", endpoint, methods=[method])


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise BadParam("limit must be an integer") from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadParam(f"limit must be between 1 and {MAX_LIMIT}")
    return value


def _time(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return parse_ms(raw)
    except ValueError:
        raise BadParam(f"{name} must be an ISO 8601 date-time") from None


def _collection(kind: str) -> UserHandler:
    def handler(request: Request, sim: Simulator, user: UserData) -> Response:
        limit, start = _limit(request), _time(request, "start")
        end = _time(request, "end")
        end = sim.clock.now_ms() if end is None else end
        try:
            records, token = user.page(
                kind, start, end, limit, request.query_params.get("nextToken")
            )
        except BadCursor:
            raise BadParam("nextToken is not valid") from None
        body: Body = {"records": records}
        if token is not None:
            body["next_token"] = token
        return json_response(body)

    return handler


def _cycle_id(request: Request) -> int:
    try:
        return int(request.path_params["cycleId"])
    except ValueError:
        raise BadParam("cycleId must be an integer") from None


def _by_id(kind: str, param: str) -> UserHandler:
    def handler(request: Request, sim: Simulator, user: UserData) -> Response:
        raw = request.path_params[param]
        if kind == "cycle":
            key = str(_cycle_id(request))
        else:
            try:
                key = str(uuid.UUID(raw))
            except ValueError:
                raise BadParam(f"{param} must be a UUID") from None
        found = user.get(kind, key)
        return json_response(found) if found else error(404, f"no {kind} {raw}")

    return handler


def _cycle_sleep(request: Request, sim: Simulator, user: UserData) -> Response:
    cycle_id = _cycle_id(request)
    sleep = user.main_sleep(cycle_id) if user.get("cycle", str(cycle_id)) else None
    return json_response(sleep) if sleep else error(404, f"no sleep for cycle {cycle_id}")


def _cycle_recovery(request: Request, sim: Simulator, user: UserData) -> Response:
    cycle_id = _cycle_id(request)
    recovery = user.get("recovery", str(cycle_id))
    return json_response(recovery) if recovery else error(404, f"no recovery for cycle {cycle_id}")


def _profile(request: Request, sim: Simulator, user: UserData) -> Response:
    p = user.profile
    body = {
        "user_id": p.user_id,
        "email": p.email,
        "first_name": p.first_name,
        "last_name": p.last_name,
    }
    return json_response(body)


def _body(request: Request, sim: Simulator, user: UserData) -> Response:
    p = user.profile
    body = {"height_meter": p.height_meter, "weight_kilogram": p.weight_kilogram}
    return json_response(body | {"max_heart_rate": p.max_heart_rate})


def _activity_mapping(request: Request, sim: Simulator, user: UserData) -> Response:
    """`/v1/activity-mapping/{activityV1Id}`: the v2 UUID of a sleep or workout by its v1 id
    (`v1_id`, which WHOOP's records carried until 2025-09-01)."""
    raw = request.path_params["activityV1Id"]
    try:
        v1_id = int(raw)
    except ValueError:
        raise BadParam("activityV1Id must be an integer") from None
    for kind in ("sleep", "workout"):
        for rec in user.kinds[kind].values():
            if rec.body.get("v1_id") == v1_id:
                return json_response({"v2_activity_id": rec.body["id"]})
    return error(404, f"no activity mapping for {raw}")


def _revoke(request: Request, sim: Simulator, user: UserData) -> Response:
    sim.revoke(user.profile.user_id)
    return Response(status_code=204)


def routes() -> list[Route]:
    """Every data endpoint the product uses."""
    s = SCOPES
    return [
        _user_route("/v2/cycle", s["cycle"], _collection("cycle")),
        _user_route("/v2/cycle/{cycleId}", s["cycle"], _by_id("cycle", "cycleId")),
        _user_route("/v2/cycle/{cycleId}/sleep", s["sleep"], _cycle_sleep),
        _user_route("/v2/cycle/{cycleId}/recovery", s["recovery"], _cycle_recovery),
        _user_route("/v2/recovery", s["recovery"], _collection("recovery")),
        _user_route("/v2/activity/sleep", s["sleep"], _collection("sleep")),
        _user_route("/v2/activity/sleep/{sleepId}", s["sleep"], _by_id("sleep", "sleepId")),
        _user_route("/v2/activity/workout", s["workout"], _collection("workout")),
        _user_route(
            "/v2/activity/workout/{workoutId}", s["workout"], _by_id("workout", "workoutId")
        ),
        _user_route("/v2/user/profile/basic", "read:profile", _profile),
        _user_route("/v2/user/measurement/body", "read:body_measurement", _body),
        _user_route("/v2/user/access", None, _revoke, method="DELETE"),
        _user_route("/v1/activity-mapping/{activityV1Id}", None, _activity_mapping),
    ]
