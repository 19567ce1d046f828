"""A member's past: `days` cycles, each opened by a night's sleep with its recovery, some naps and
workouts; the newest cycle is the current one (no `end`), and recent records may still be pending."""

from __future__ import annotations

import random

from services.simulator.generate import (
    CYCLE_ID_BASE,
    DAY,
    HOUR,
    MINUTE,
    cycle_body,
    recovery_body,
    score_state,
    sleep_body,
    user_rng,
    workout_body,
)
from services.simulator.records import Profile, UserData

CYCLES_PER_USER = 1_000_000  # cycle id space reserved per member


def first_cycle_id(user_id: int, first_user_id: int) -> int:
    """Where this member's cycle ids begin (globally unique, int64)."""
    return CYCLE_ID_BASE + (user_id - first_user_id) * CYCLES_PER_USER


def build_history(
    profile: Profile, seed: int, days: int, now_ms: int, first_user_id: int
) -> UserData:
    """Every record of one member, reproducible from (seed, user id, now)."""
    user = UserData(profile)
    rng = user_rng(seed, profile.user_id, "history")
    count = max(1, days)
    last = now_ms - int(rng.uniform(16, 20) * HOUR)
    starts = [last - k * DAY + (rng.randint(-45, 45) * MINUTE if k else 0) for k in range(count)]
    starts.reverse()
    base = first_cycle_id(profile.user_id, first_user_id)
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < count else None
        _one_day(user, rng, base + k, start, end, now_ms, recent=end is None)
    return user


def _one_day(
    user: UserData,
    rng: random.Random,
    cid: int,
    start: int,
    end: int | None,
    now_ms: int,
    *,
    recent: bool,
) -> None:
    user.put("cycle", cycle_body(user, rng, cid, start, end))
    wake = start + rng.randint(6 * 60, 9 * 60) * MINUTE
    state = score_state(rng, 0.4 if recent else 0.02)
    sleep = user.put("sleep", sleep_body(user, rng, cid, start, wake, nap=False, state=state))
    recovery_state = "PENDING_SCORE" if state == "PENDING_SCORE" else score_state(rng, 0.02)
    user.put("recovery", recovery_body(user, rng, sleep, wake, recovery_state))
    limit = min(end if end is not None else now_ms, now_ms) - 3 * HOUR
    for _ in range(rng.choice((0, 1, 1, 2))):
        w_start = wake + rng.randint(60, 12 * 60) * MINUTE
        w_end = w_start + rng.randint(25, 95) * MINUTE
        if w_end < limit:
            w_state = score_state(rng, 0.3 if recent else 0.02)
            user.put("workout", workout_body(user, rng, w_start, w_end, w_state))
    if rng.random() < 0.15:
        n_start = wake + rng.randint(5 * 60, 9 * 60) * MINUTE
        n_end = n_start + rng.randint(20, 60) * MINUTE
        if n_end < limit:
            n_state = score_state(rng, 0.02)
            user.put("sleep", sleep_body(user, rng, cid, n_start, n_end, nap=True, state=n_state))
