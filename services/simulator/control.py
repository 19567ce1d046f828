"""The control API under `/_sim` (JSON): users, clock, faults, counters, scenario, tokens, webhooks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.simulator import control_records
from services.simulator.clock import iso
from services.simulator.faults import BadRule
from services.simulator.gate import error, json_response, read_json, sim_of
from services.simulator.scenario import ACTIONS


def user_id_of(request: Request) -> int | None:
    """The `{user_id}` path parameter if it names a simulated member."""
    try:
        user_id = int(request.path_params["user_id"])
    except ValueError:
        return None
    return user_id if user_id in sim_of(request).world.profiles else None


async def health(request: Request) -> Response:
    """Liveness."""
    return json_response({"status": "ok"})


async def users(request: Request) -> Response:
    """Every simulated member: id, email, names, whether connected."""
    sim = sim_of(request)
    listed = [
        {
            "user_id": p.user_id,
            "email": p.email,
            "first_name": p.first_name,
            "last_name": p.last_name,
            "connected": p.user_id in sim.world.connected,
        }
        for p in sim.world.profiles.values()
    ]
    return json_response({"users": listed})


async def clock(request: Request) -> Response:
    """GET: simulated now; POST {"seconds": N} jumps forward first, {"speed": S} sets the speed."""
    sim = sim_of(request)
    if request.method == "POST":
        body = await read_json(request)
        seconds, speed = body.get("seconds", 0), body.get("speed")
        if not isinstance(seconds, int | float) or seconds < 0:
            return error(400, "seconds must be a non-negative number")
        if speed is not None and (not isinstance(speed, int | float) or speed <= 0):
            return error(400, "speed must be a positive number")
        sim.clock.advance(float(seconds))
        if speed is not None:
            sim.clock.set_speed(float(speed))
    return json_response({"now": iso(sim.clock.now_ms()), "speed": sim.clock.speed})


async def faults(request: Request) -> Response:
    """GET lists rules, POST adds one, DELETE clears them."""
    sim = sim_of(request)
    if request.method == "POST":
        try:
            rule = sim.faults.add(await read_json(request))
        except (BadRule, ValueError) as exc:
            return error(400, str(exc))
        return json_response(rule.as_json(), 201)
    if request.method == "DELETE":
        sim.faults.clear()
        return Response(status_code=204)
    return json_response({"faults": [r.as_json() for r in sim.faults.rules]})


async def counters(request: Request) -> Response:
    """GET reads the call counters (with the budget's day use and the webhook receiver's answers
    by status), DELETE zeroes them."""
    sim = sim_of(request)
    if request.method == "DELETE":
        sim.reset_counters()
        return Response(status_code=204)
    body = sim.counters.as_json()
    body["day_used"] = sim.limiter.day_used
    body["webhook_answers"] = dict(sim.webhooks.answers)
    return json_response(body)


async def rate_limit(request: Request) -> Response:
    """GET: the budget and its use; POST {"per_minute": N, "per_day": M}: a new budget, with
    windows counted from now (a measurement's set-up unbounded, its day under WHOOP's budget)."""
    limiter = sim_of(request).limiter
    if request.method == "POST":
        body = await read_json(request)
        given = {k: body.get(k) for k in ("per_minute", "per_day")}
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in given.values()):
            return error(400, "per_minute and per_day must be positive integers")
        limiter.per_minute, limiter.per_day = int(body["per_minute"]), int(body["per_day"])
        limiter.reset()
    return json_response(
        {
            "per_minute": limiter.per_minute,
            "per_day": limiter.per_day,
            "minute_used": limiter.minute_used,
            "day_used": limiter.day_used,
        }
    )


async def calls(request: Request) -> Response:
    """GET: the data API calls since the last reset, oldest first, each [real epoch seconds,
    endpoint, WHOOP user id or null, status] (for a measurement to say what each call was for)."""
    return json_response({"calls": list(sim_of(request).counters.calls)})


async def reset(request: Request) -> Response:
    """Clear faults, counters, rate windows and pending denials."""
    sim_of(request).reset()
    return Response(status_code=204)


async def step(request: Request) -> Response:
    """Run one scenario step: {"user_id"?: int, "action"?: one of ACTIONS}."""
    sim = sim_of(request)
    body = await read_json(request)
    user_id, action = body.get("user_id"), body.get("action")
    if user_id is not None and user_id not in sim.world.profiles:
        return error(404, f"no simulated user {user_id}")
    if action is not None and action not in ACTIONS:
        return error(400, f"action must be one of {list(ACTIONS)}")
    outcomes = sim.step(user_id, action)
    return json_response({"step": sim.world.steps, "outcomes": [o.as_json() for o in outcomes]})


async def expire_access(request: Request) -> Response:
    """Make the member's access tokens expired (the next data call gets 401)."""
    user_id = user_id_of(request)
    if user_id is None:
        return error(404, "no such simulated user")
    return json_response({"expired": sim_of(request).tokens.expire_access(user_id)})


async def revoke_refresh(request: Request) -> Response:
    """Kill the member's refresh tokens (the next refresh gets invalid_grant)."""
    user_id = user_id_of(request)
    if user_id is None:
        return error(404, "no such simulated user")
    return json_response({"revoked": sim_of(request).tokens.revoke_refresh(user_id)})


async def deny(request: Request) -> Response:
    """The next {"count": N} authorizations answer error=access_denied."""
    count = (await read_json(request)).get("count", 1)
    if not isinstance(count, int) or count < 0:
        return error(400, "count must be a non-negative integer")
    sim_of(request).deny_next = count
    return json_response({"deny_next": count})


async def webhooks(request: Request) -> Response:
    """GET: deliveries, newest first; POST {"user_id","type","id"}: send one; DELETE: clear the log."""
    sim = sim_of(request)
    if request.method == "DELETE":
        sim.webhooks.log.clear()
        return Response(status_code=204)
    if request.method == "GET":
        return json_response(sim.webhooks.as_json())
    body = await read_json(request)
    try:
        delivery = sim.webhooks.send(int(body["user_id"]), str(body["id"]), str(body["type"]))
    except (KeyError, ValueError, TypeError) as exc:
        return error(400, f"need user_id, id and a known type: {exc}")
    return json_response({"trace_id": delivery.trace_id, "status": delivery.status}, 202)


async def webhook_loss(request: Request) -> Response:
    """GET: the share of webhooks WHOOP loses; POST {"share": 0..1}: set it (the audit finds them)."""
    sim = sim_of(request)
    if request.method == "POST":
        share = (await read_json(request)).get("share")
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            return error(400, "share must be a number from 0 to 1")
        sim.webhooks.loss = float(share)
    return json_response({"share": sim.webhooks.loss})


async def grow_cycles(request: Request) -> Response:
    """POST: grow every member's open cycle by the simulated hours passed since the last time."""
    return json_response({"grown": sim_of(request).grow_cycles()})


def routes() -> list[Route]:
    """Every control endpoint."""
    u = "/_sim/users/{user_id}"
    return [
        Route("/_sim/health", health, methods=["GET"]),
        Route("/_sim/users", users, methods=["GET"]),
        Route("/_sim/clock", clock, methods=["GET", "POST"]),
        Route("/_sim/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sim/counters", counters, methods=["GET", "DELETE"]),
        Route("/_sim/calls", calls, methods=["GET"]),
        Route("/_sim/rate-limit", rate_limit, methods=["GET", "POST"]),
        Route("/_sim/reset", reset, methods=["POST"]),
        Route("/_sim/scenario/step", step, methods=["POST"]),
        Route("/_sim/oauth/deny", deny, methods=["POST"]),
        Route("/_sim/webhooks", webhooks, methods=["GET", "POST", "DELETE"]),
        Route("/_sim/webhook-loss", webhook_loss, methods=["GET", "POST"]),
        Route("/_sim/cycles/grow", grow_cycles, methods=["POST"]),
        Route(f"{u}/expire-access-token", expire_access, methods=["POST"]),
        Route(f"{u}/revoke-refresh-token", revoke_refresh, methods=["POST"]),
        *control_records.routes(u),
    ]
