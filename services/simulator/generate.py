"""Deterministic, plausible WHOOP records: the same seed gives the same members and history."""

from __future__ import annotations

import random
import uuid

from services.simulator.clock import iso
from services.simulator.records import Body, Profile, UserData

HOUR = 3_600_000
MINUTE = 60_000
DAY = 24 * HOUR
CYCLE_ID_BASE = 3_000_000_000  # beyond int32 on purpose: cycle ids are int64 at WHOOP
SPORTS = ("running", "cycling", "weightlifting", "functional-fitness", "yoga", "swimming")
FIRST = ("Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun")
LAST = ("Smith", "Okafor", "Lind", "Rossi", "Tanaka", "Novak", "Silva", "Meyer")
OFFSETS = ("-08:00", "-05:00", "+00:00", "+01:00", "+05:30", "+09:00")


def user_rng(seed: int, user_id: int, salt: str = "") -> random.Random:
    """A generator private to one member (and purpose), stable across runs."""
    return random.Random(f"{seed}:{user_id}:{salt}")


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from `rng`."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_profile(seed: int, index: int, first_user_id: int) -> Profile:
    """The `index`-th simulated member."""
    user_id = first_user_id + index
    rng = user_rng(seed, user_id, "profile")
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return Profile(
        user_id=user_id,
        email=f"{first.lower()}.{last.lower()}.{user_id}@sim.whoop.test",
        first_name=first,
        last_name=last,
        height_meter=round(rng.uniform(1.55, 1.95), 4),
        weight_kilogram=round(rng.uniform(52, 105), 4),
        max_heart_rate=rng.randint(175, 205),
        timezone_offset=rng.choice(OFFSETS),
    )


def score_state(rng: random.Random, pending: float) -> str:
    """SCORED mostly; PENDING_SCORE with probability `pending`; rarely UNSCORABLE."""
    roll = rng.random()
    if roll < pending:
        return "PENDING_SCORE"
    return "UNSCORABLE" if roll > 0.99 else "SCORED"


def _base(user: UserData, created: int, state: str) -> Body:
    return {
        "user_id": user.profile.user_id,
        "created_at": iso(created),
        "updated_at": iso(created),
        "score_state": state,
    }


def cycle_body(user: UserData, rng: random.Random, cid: int, start: int, end: int | None) -> Body:
    """A cycle; without `end` it is the current one."""
    state = "SCORED" if end is None else score_state(rng, 0.02)
    body = _base(user, start + rng.randint(1, 9) * MINUTE, state)
    body.update(id=cid, start=iso(start), timezone_offset=user.profile.timezone_offset)
    if end is not None:
        body["end"] = iso(end)
    if state == "SCORED":
        body["score"] = cycle_score(rng)
    return body


def cycle_score(rng: random.Random) -> Body:
    """A cycle's score."""
    return {
        "strain": round(rng.uniform(4, 19), 4),
        "kilojoule": round(rng.uniform(6000, 16000), 3),
        "average_heart_rate": rng.randint(55, 85),
        "max_heart_rate": rng.randint(130, 190),
    }


def sleep_body(
    user: UserData, rng: random.Random, cid: int, start: int, end: int, *, nap: bool, state: str
) -> Body:
    """A sleep (or nap) in cycle `cid`."""
    body = _base(user, end + rng.randint(1, 10) * MINUTE, state)
    body.update(
        id=new_uuid(rng),
        cycle_id=cid,
        start=iso(start),
        end=iso(end),
        timezone_offset=user.profile.timezone_offset,
        nap=nap,
    )
    if state == "SCORED":
        body["score"] = sleep_score(rng, end - start)
    return body


def sleep_score(rng: random.Random, in_bed: int) -> Body:
    """A sleep's score whose stages add up to the time in bed."""
    awake = int(in_bed * rng.uniform(0.04, 0.12))
    rem, deep = int(in_bed * rng.uniform(0.18, 0.26)), int(in_bed * rng.uniform(0.12, 0.22))
    return {
        "stage_summary": {
            "total_in_bed_time_milli": in_bed,
            "total_awake_time_milli": awake,
            "total_no_data_time_milli": 0,
            "total_light_sleep_time_milli": in_bed - awake - rem - deep,
            "total_slow_wave_sleep_time_milli": deep,
            "total_rem_sleep_time_milli": rem,
            "sleep_cycle_count": max(1, in_bed // (90 * MINUTE)),
            "disturbance_count": rng.randint(0, 15),
        },
        "sleep_needed": {
            "baseline_milli": rng.randint(450, 510) * MINUTE,
            "need_from_sleep_debt_milli": rng.randint(0, 60) * MINUTE,
            "need_from_recent_strain_milli": rng.randint(0, 30) * MINUTE,
            "need_from_recent_nap_milli": -rng.randint(0, 20) * MINUTE,
        },
        "respiratory_rate": round(rng.uniform(13, 18), 3),
        "sleep_performance_percentage": float(rng.randint(55, 100)),
        "sleep_consistency_percentage": float(rng.randint(50, 95)),
        "sleep_efficiency_percentage": round(rng.uniform(80, 98), 3),
    }


def recovery_body(user: UserData, rng: random.Random, sleep: Body, end: int, state: str) -> Body:
    """The recovery of the sleep's cycle."""
    body = _base(user, end + rng.randint(2, 15) * MINUTE, state)
    body.update(cycle_id=sleep["cycle_id"], sleep_id=sleep["id"])
    if state == "SCORED":
        body["score"] = recovery_score(rng)
    return body


def recovery_score(rng: random.Random) -> Body:
    """A recovery's score."""
    return {
        "user_calibrating": False,
        "recovery_score": float(rng.randint(10, 99)),
        "resting_heart_rate": float(rng.randint(42, 70)),
        "hrv_rmssd_milli": round(rng.uniform(20, 140), 4),
        "spo2_percentage": round(rng.uniform(94, 99), 3),
        "skin_temp_celsius": round(rng.uniform(32.5, 34.5), 2),
    }


def workout_body(user: UserData, rng: random.Random, start: int, end: int, state: str) -> Body:
    """A workout."""
    body = _base(user, end + rng.randint(1, 5) * MINUTE, state)
    sport = rng.randrange(len(SPORTS))
    body.update(
        id=new_uuid(rng),
        start=iso(start),
        end=iso(end),
        timezone_offset=user.profile.timezone_offset,
        sport_name=SPORTS[sport],
        sport_id=sport,
    )
    if state == "SCORED":
        body["score"] = workout_score(rng, end - start)
    return body


def workout_score(rng: random.Random, duration: int) -> Body:
    """A workout's score whose zones add up to its duration."""
    cuts = sorted(rng.randint(0, duration) for _ in range(5))
    parts = [b - a for a, b in zip([0, *cuts], [*cuts, duration], strict=True)]
    names = ("zero", "one", "two", "three", "four", "five")
    return {
        "strain": round(rng.uniform(3, 18), 4),
        "average_heart_rate": rng.randint(100, 160),
        "max_heart_rate": rng.randint(150, 195),
        "kilojoule": round(rng.uniform(300, 3500), 3),
        "percent_recorded": 100.0,
        "distance_meter": round(rng.uniform(1000, 20000), 2),
        "altitude_gain_meter": round(rng.uniform(0, 400), 2),
        "altitude_change_meter": round(rng.uniform(-50, 50), 2),
        "zone_durations": {f"zone_{n}_milli": p for n, p in zip(names, parts, strict=True)},
    }
