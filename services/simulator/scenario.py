"""The scenario driver: each step moves members' data on (a night's sleep opens a new cycle with a
pending recovery, workouts, rescoring PENDING_SCORE → SCORED, edits, deletions) and sends the
webhooks WHOOP would send for it (never for cycles: WHOOP has no cycle webhooks)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from services.simulator import generate as g
from services.simulator.clock import iso, parse_ms
from services.simulator.generate import HOUR, MINUTE
from services.simulator.records import Body, UserData

ACTIONS = ("new_sleep", "workout", "rescore", "update", "delete", "cycle_hour")
WEIGHTS = {"new_sleep": 3.0, "workout": 2.0, "rescore": 3.0, "update": 1.0, "delete": 0.3}


@dataclass
class Outcome:
    """What one step did to one member."""

    user_id: int
    action: str | None
    changed: list[dict[str, str]] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)  # (type, id) webhooks due

    def as_json(self) -> dict[str, Any]:
        """The control API's view."""
        events = [{"type": t, "id": i} for t, i in self.events]
        return {
            "user_id": self.user_id,
            "action": self.action,
            "changed": self.changed,
            "events": events,
        }


def touch(body: Body, now_ms: int) -> None:
    """Bump `updated_at`, strictly newer than before (consumers ignore equal timestamps)."""
    body["updated_at"] = iso(max(now_ms, parse_ms(body["updated_at"]) + 1))


def step_user(user: UserData, rng: random.Random, now_ms: int, action: str | None) -> Outcome:
    """Apply one action (chosen by `rng` unless given) to a member.

    `cycle_hour` (an hour of the open cycle: strain and kilojoules grow) is never chosen by chance;
    the simulator's clock runs it every simulated hour, and a step can ask for it.
    """
    if action == "cycle_hour":
        outcome = Outcome(user.profile.user_id, None)
        if grow_open_cycle(user, rng, now_ms):
            outcome.action = action
            cycle = _current_cycle(user)
            assert cycle is not None
            outcome.changed.append({"kind": "cycle", "id": str(cycle["id"])})
        return outcome
    possible = {a: w for a, w in WEIGHTS.items() if _possible(user, a, now_ms)}
    if action is None and possible:
        action = rng.choices(list(possible), weights=list(possible.values()))[0]
    outcome = Outcome(user.profile.user_id, action if action in possible else None)
    if outcome.action is not None:
        ACTION_FUNCS[outcome.action](user, rng, now_ms, outcome)
    return outcome


def grow_open_cycle(user: UserData, rng: random.Random, now_ms: int) -> bool:
    """An hour of the day: the open cycle's strain and kilojoules grow, with no webhook (WHOOP
    has no cycle webhooks); False when the member has no scored open cycle."""
    cycle = _current_cycle(user)
    if cycle is None or cycle.get("score_state") != "SCORED":
        return False
    score = cycle["score"]
    score["strain"] = min(21.0, round(score["strain"] + rng.uniform(0.05, 0.6), 4))
    score["kilojoule"] = round(score["kilojoule"] + rng.uniform(150, 450), 3)
    touch(cycle, now_ms)
    user.put("cycle", cycle)
    return True


def _gap(user: UserData, now_ms: int) -> int:
    ends = [parse_ms(r.body["end"]) for k in ("sleep", "workout") for r in user.kinds[k].values()]
    current = _current_cycle(user)
    if current is not None:
        ends.append(parse_ms(current["start"]))
    return now_ms - max(ends, default=0)


def _current_cycle(user: UserData) -> Body | None:
    open_cycles = [r for r in user.kinds["cycle"].values() if "end" not in r.body]
    return max(open_cycles, key=lambda r: r.key_ms).body if open_cycles else None


def _pending(user: UserData) -> list[tuple[str, Body]]:
    return [
        (kind, r.body)
        for kind in ("sleep", "recovery", "workout", "cycle")
        for r in user.kinds[kind].values()
        if r.body["score_state"] == "PENDING_SCORE"
    ]


def _possible(user: UserData, action: str, now_ms: int) -> bool:
    if action == "new_sleep":
        return _gap(user, now_ms) >= 2 * HOUR
    if action == "workout":
        return _gap(user, now_ms) >= 45 * MINUTE and _current_cycle(user) is not None
    if action == "rescore":
        return bool(_pending(user))
    if action == "update":
        return any(r.body["score_state"] == "SCORED" for r in user.kinds["sleep"].values())
    return bool(user.kinds["workout"]) or any(r.body["nap"] for r in user.kinds["sleep"].values())


def _new_sleep(user: UserData, rng: random.Random, now_ms: int, out: Outcome) -> None:
    end = now_ms - MINUTE
    start = end - min(rng.randint(6 * 60, 9 * 60) * MINUTE, _gap(user, now_ms) - HOUR)
    current = _current_cycle(user)
    if current is not None:
        current["end"] = iso(start)
        touch(current, now_ms)
        user.put("cycle", current)
        out.changed.append({"kind": "cycle", "id": str(current["id"])})
    cid = max((int(k) for k in user.kinds["cycle"]), default=g.CYCLE_ID_BASE) + 1
    user.put("cycle", g.cycle_body(user, rng, cid, start, None))
    sleep = user.put(
        "sleep", g.sleep_body(user, rng, cid, start, end, nap=False, state="PENDING_SCORE")
    )
    user.put("recovery", g.recovery_body(user, rng, sleep, end, "PENDING_SCORE"))
    out.changed += [{"kind": "cycle", "id": str(cid)}, {"kind": "sleep", "id": sleep["id"]}]
    out.changed.append({"kind": "recovery", "id": str(cid)})
    out.events += [("sleep.updated", sleep["id"]), ("recovery.updated", sleep["id"])]


def _workout(user: UserData, rng: random.Random, now_ms: int, out: Outcome) -> None:
    end = now_ms - MINUTE
    duration = min(rng.randint(25, 90) * MINUTE, _gap(user, now_ms) - 10 * MINUTE)
    workout = user.put(
        "workout", g.workout_body(user, rng, end - duration, end, g.score_state(rng, 0.4))
    )
    cycle = _current_cycle(user)
    assert cycle is not None
    if cycle["score_state"] == "SCORED":
        cycle["score"]["strain"] = min(
            21.0, round(cycle["score"]["strain"] + rng.uniform(0.5, 3), 4)
        )
    touch(cycle, now_ms)
    out.changed += [
        {"kind": "workout", "id": workout["id"]},
        {"kind": "cycle", "id": str(cycle["id"])},
    ]
    out.events.append(("workout.updated", workout["id"]))


def _rescore(user: UserData, rng: random.Random, now_ms: int, out: Outcome) -> None:
    kind, body = rng.choice(_pending(user))
    body["score_state"] = "SCORED"
    body["score"] = _score(kind, body, rng)
    touch(body, now_ms)
    user.put(kind, body)
    key = str(body["cycle_id"] if kind == "recovery" else body["id"])
    out.changed.append({"kind": kind, "id": key})
    if kind != "cycle":
        out.events.append(
            (f"{kind}.updated", str(body["sleep_id"] if kind == "recovery" else body["id"]))
        )


def _score(kind: str, body: Body, rng: random.Random) -> Body:
    if kind == "cycle":
        return g.cycle_score(rng)
    if kind == "recovery":
        return g.recovery_score(rng)
    duration = parse_ms(body["end"]) - parse_ms(body["start"])
    return g.sleep_score(rng, duration) if kind == "sleep" else g.workout_score(rng, duration)


def _update(user: UserData, rng: random.Random, now_ms: int, out: Outcome) -> None:
    scored = [r.body for r in user.kinds["sleep"].values() if r.body["score_state"] == "SCORED"]
    sleep = max(scored, key=lambda b: b["start"]) if rng.random() < 0.7 else rng.choice(scored)
    sleep["score"]["sleep_performance_percentage"] = float(rng.randint(55, 100))
    touch(sleep, now_ms)
    out.changed.append({"kind": "sleep", "id": sleep["id"]})
    out.events.append(("sleep.updated", sleep["id"]))


def _delete(user: UserData, rng: random.Random, now_ms: int, out: Outcome) -> None:
    naps = [r.body for r in user.kinds["sleep"].values() if r.body["nap"]]
    if user.kinds["workout"] and (not naps or rng.random() < 0.7):
        victim = rng.choice(sorted(user.kinds["workout"]))
        user.delete("workout", victim)
        out.changed.append({"kind": "workout", "id": victim})
        out.events.append(("workout.deleted", victim))
        return
    nap = rng.choice(naps)
    user.delete("sleep", nap["id"])
    out.changed.append({"kind": "sleep", "id": nap["id"]})
    out.events.append(("sleep.deleted", nap["id"]))


ACTION_FUNCS = {
    "new_sleep": _new_sleep,
    "workout": _workout,
    "rescore": _rescore,
    "update": _update,
    "delete": _delete,
}
