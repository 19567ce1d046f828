"""The economy bench's accounts: what each WHOOP call was for, which cycle a night closed, why a
read answered stale_cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.loadgen import answer_source
from bench.scenarios.economy.changes import closed_cycle
from bench.scenarios.economy.merge import merge
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


def _part(profile: str, users: int, calls: int) -> dict[str, Any]:
    """An economy.json of one profile's day, as far as merging reads it."""
    label = {"app_opens": "app opens", "feed_only": "feed only"}[profile]
    kinds = {"by-id": calls, "cycle by night": 0, "cycle by read": 0, "audit": 0, "other": 0}
    return {
        "number": 4,
        "title": "Upstream economy",
        "rows": [{"metric": f"economy [{label}, {users} users]: calls per user-day"}],
        "notes": [f"{profile} run"],
        "seconds": 10.0,
        "details": {
            "clock": {f"webhooks/{profile}": {"time_factor": 100.0}},
            "days": {f"webhooks/{profile}": {"calls": calls}},
            "table": [
                {
                    "profile": profile,
                    "users": users,
                    "design": "ideal",
                    "how": "computed",
                    "calls": calls,
                    "calls_per_user_day": calls / users,
                    "ratio_to_ideal": 1.0,
                    "ratio_to_guide": None,
                    "users_10k_calls_carry": 10,
                    "freshness_p50_s": None,
                    "freshness_p99_s": None,
                    "stale_cache_reads": None,
                }
            ],
            "accounts": [
                {
                    "profile": profile,
                    "users": users,
                    "rate_limited_429": 0,
                    "stale_cache_by_reason": {},
                    "events_at_day_end": {"pending": 0, "failed": 0},
                    "five_xx": {"reads": 0, "webhooks": 0},
                    "calls_by_kind": kinds,
                    "next_hour": {},
                    "not_valid": None,
                }
            ],
        },
    }


def test_runs_of_some_profiles_merge_into_one_result(tmp_path: Path) -> None:
    first = _part("app_opens", 10, 100)
    merged = merge([first, _part("feed_only", 20, 50), _part("app_opens", 10, 120)], tmp_path)
    details = merged["details"]
    assert [a["profile"] for a in details["accounts"]] == ["feed_only", "app_opens"]
    assert [r["calls"] for r in details["table"]] == [50, 120]
    assert sorted(details["days"]) == ["webhooks/app_opens", "webhooks/feed_only"]
    assert [r["metric"].split(":")[0] for r in merged["rows"]] == [
        "economy [feed only, 20 users]",
        "economy [app opens, 10 users]",
    ]
    assert "| feed only (20) |" in details["readme"]
    assert (tmp_path / "economy.png").stat().st_size > 0
