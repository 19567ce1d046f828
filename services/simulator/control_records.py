"""Control API over one member's records: read, create, modify and delete any record, sending the
matching webhook (`?webhook=false` to keep quiet; only connected members get webhooks)."""

from __future__ import annotations

import random
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.simulator import generate as g
from services.simulator.clock import iso, parse_ms
from services.simulator.gate import error, json_response, read_json, sim_of
from services.simulator.records import KINDS, Body, UserData
from services.simulator.scenario import touch
from services.simulator.state import Simulator

SCORES = {"cycle": g.cycle_score, "recovery": g.recovery_score}


def _target(request: Request) -> tuple[Simulator, UserData, str] | Response:
    sim, params = sim_of(request), request.path_params
    try:
        user_id = int(params["user_id"])
    except ValueError:
        user_id = -1
    if user_id not in sim.world.profiles:
        return error(404, "no such simulated user")
    if params["kind"] not in KINDS:
        return error(404, f"kind must be one of {list(KINDS)}")
    return sim, sim.world.data(user_id), params["kind"]


def _notify(
    request: Request, sim: Simulator, user: UserData, kind: str, body: Body, verb: str
) -> Any:
    if kind == "cycle" or request.query_params.get("webhook") == "false":
        return None
    if user.profile.user_id not in sim.world.connected:
        return None
    record_id = body["sleep_id"] if kind == "recovery" else body["id"]
    delivery = sim.webhooks.send(user.profile.user_id, str(record_id), f"{kind}.{verb}")
    return {"type": delivery.type, "id": delivery.id, "trace_id": delivery.trace_id}


def _rescore(kind: str, body: Body, rng: random.Random) -> None:
    if body.get("score_state") != "SCORED":
        body.pop("score", None)
    elif "score" not in body:
        scorer = {"sleep": g.sleep_score, "workout": g.workout_score}.get(kind)
        if scorer is None:  # cycle and recovery scores need no span
            body["score"] = SCORES[kind](rng)
            return
        span = parse_ms(body.get("end") or body["start"]) - parse_ms(body["start"])
        body["score"] = scorer(rng, max(span, 60_000))


def _defaults(sim: Simulator, user: UserData, kind: str, given: Body, rng: random.Random) -> Body:
    now = sim.clock.now_ms()
    end = parse_ms(given["end"]) if "end" in given else now - g.MINUTE
    start = parse_ms(given["start"]) if "start" in given else end - g.HOUR
    state = str(given.get("score_state", "SCORED"))
    if kind == "cycle":
        cid = max((int(k) for k in user.kinds["cycle"]), default=g.CYCLE_ID_BASE) + 1
        if "end" not in given:
            _close_open_cycles(user, start, now)
        return g.cycle_body(user, rng, cid, start, end if "end" in given else None)
    if kind == "workout":
        return g.workout_body(user, rng, start, end, state)
    if kind == "sleep":
        cycles = sorted(user.kinds["cycle"].values(), key=lambda r: r.key_ms)
        cid = int(given.get("cycle_id") or (cycles[-1].body["id"] if cycles else 0))
        return g.sleep_body(user, rng, cid, start, end, nap=bool(given.get("nap")), state=state)
    sleep = user.get("sleep", str(given["sleep_id"])) if "sleep_id" in given else _newest_main(user)
    if sleep is None:
        raise KeyError("a recovery needs the sleep_id of an existing sleep")
    return g.recovery_body(user, rng, sleep, parse_ms(sleep["end"]), state)


def _newest_main(user: UserData) -> Body | None:
    mains = [r for r in user.kinds["sleep"].values() if not r.body["nap"]]
    return max(mains, key=lambda r: r.key_ms).body if mains else None


def _close_open_cycles(user: UserData, at: int, now: int) -> None:
    """A new current cycle ends the one before it (only one cycle lacks `end`)."""
    for rec in user.kinds["cycle"].values():
        if "end" not in rec.body:
            rec.body["end"] = iso(max(at, rec.key_ms + 1))
            touch(rec.body, now)


async def collection(request: Request) -> Response:
    """POST: create a record from a partial body (the rest is generated)."""
    target = _target(request)
    if isinstance(target, Response):
        return target
    sim, user, kind = target
    given = await read_json(request)
    rng = random.Random()  # records made through control vary, so their ids never collide
    try:
        body = _defaults(sim, user, kind, given, rng) | given
    except (KeyError, ValueError) as exc:
        return error(400, str(exc))
    body["user_id"] = user.profile.user_id
    _rescore(kind, body, rng)
    user.put(kind, body)
    webhook = _notify(request, sim, user, kind, body, "updated")
    return json_response({"record": body, "webhook": webhook}, 201)


async def item(request: Request) -> Response:
    """GET reads, PATCH merges fields (bumping updated_at), DELETE removes a record."""
    target = _target(request)
    if isinstance(target, Response):
        return target
    sim, user, kind = target
    key = request.path_params["id"]
    body = user.get(kind, key)
    if body is None:
        return error(404, f"no {kind} {key}")
    if request.method == "GET":
        return json_response(body)
    if request.method == "DELETE":
        user.delete(kind, key)
        if kind == "sleep" and (recovery := user.recovery_for_sleep(key)) is not None:
            user.delete("recovery", str(recovery["cycle_id"]))
        webhook = _notify(request, sim, user, kind, body, "deleted")
        return json_response({"record": body, "webhook": webhook})
    changes = await read_json(request)
    for fixed in ("id", "user_id", "cycle_id" if kind == "recovery" else "id"):
        changes.pop(fixed, None)
    body.update(changes)
    if "updated_at" not in changes:
        touch(body, sim.clock.now_ms())
    _rescore(kind, body, random.Random())
    user.put(kind, body)
    webhook = _notify(request, sim, user, kind, body, "updated")
    return json_response({"record": body, "webhook": webhook})


def routes(prefix: str) -> list[Route]:
    """The record endpoints under `/_sim/users/{user_id}`."""
    return [
        Route(f"{prefix}/{{kind}}", collection, methods=["POST"]),
        Route(f"{prefix}/{{kind}}/{{id}}", item, methods=["GET", "PATCH", "DELETE"]),
    ]
