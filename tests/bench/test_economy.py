"""The economy bench's accounts: what each WHOOP call was for, which cycle a night closed, why a
read answered stale_cache."""

from __future__ import annotations

from bench.loadgen import answer_source
from bench.scenarios.economy.changes import closed_cycle
from bench.scenarios.economy.where import classify, reason
from services.simulator.config import SimConfig
from services.simulator.state import Simulator

USER = 10001
# (WHOOP user, type, trigger, started, duration ms), oldest first.
ATTEMPTS = [
    (USER, "cycle", "webhook", 100.0, 200),
    (USER, "sleep", "read", 110.0, 100),
    (USER, "cycle", "read", 120.0, 100),
    (USER, "sleep", "reconcile", 130.0, 300),
]


def test_each_call_is_put_down_to_what_it_was_for() -> None:
    calls = [
        [100.1, "GET /v2/activity/sleep/{sleepId}", USER, 200],
        [100.1, "GET /v2/cycle", USER, 200],
        [110.05, "GET /v2/activity/sleep", USER, 200],
        [120.02, "GET /v2/cycle", USER, 200],
        [130.2, "GET /v2/activity/sleep", USER, 200],
        [131.0, "GET /v2/cycle/{cycleId}/recovery", USER, 200],
        [140.0, "GET /v2/cycle", USER, 200],  # long after the cycle read's attempt ended
        [141.0, "GET /v2/recovery", None, 429],
        [99.0, "GET /v2/cycle", USER, 200],  # before the span
    ]
    found = classify(calls, ATTEMPTS, 100.0, 200.0)
    assert found["kinds"] == {
        "by-id": 2,
        "cycle by night": 1,
        "cycle by read": 1,
        "audit": 1,
        "other": 3,
    }
    assert found["other"] == {
        "sleep read": 1,
        "cycle page with no attempt": 1,
        "refused (429)": 1,
    }


def test_a_nights_sleep_closes_the_cycle_it_ends() -> None:
    sim = Simulator(SimConfig(users=1, days=3, seed=3))
    sim.clock.advance(12 * 3600)  # a day long enough since the last night
    outcome = sim.step(USER, "new_sleep")[0].as_json()
    found = closed_cycle(outcome)
    assert found is not None
    cycle_id, sleep_id = found
    closed, sleep = (
        sim.world.data(USER).get("cycle", cycle_id),
        sim.world.data(USER).get("sleep", sleep_id),
    )
    assert closed is not None
    assert sleep is not None
    assert "end" in closed
    assert sleep["cycle_id"] != int(cycle_id)
    assert closed_cycle({**outcome, "action": "workout"}) is None


def test_a_stale_answer_says_why_and_an_error_its_code() -> None:
    stale = (
        b'{"status":"success_with_warning","data":[],"metadata":{"source":"stale_cache",'
        b'"error":"refresh limit reached: retry in 12 s \\"later\\""}}'
    )
    assert answer_source(200, stale) == (
        "stale_cache",
        'refresh limit reached: retry in 12 s "later"',
    )
    refused = b'{"status":"error","error":{"code":"rate_limited","message":"wait 3 s"}}'
    assert answer_source(429, refused) == (None, "rate_limited")
    assert answer_source(200, b'{"metadata":{"source":"cache"}}') == ("cache", None)
    assert reason("retry in 12.5 s, 3 calls") == "retry in N s, N calls"
