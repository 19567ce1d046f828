"""WHOOP v2 objects shaped as the OpenAPI document describes them, for repository tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any


def iso(moment: datetime) -> str:
    """WHOOP's timestamp format: UTC with milliseconds and `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sleep(
    *,
    start: datetime,
    updated_at: datetime | None = None,
    cycle_id: int = 93845,
    sleep_id: uuid.UUID | None = None,
    whoop_user_id: int = 10129,
    score_state: str = "SCORED",
    performance: float = 98.0,
) -> dict[str, Any]:
    """A sleep object."""
    end = start + timedelta(hours=8)
    obj: dict[str, Any] = {
        "id": str(sleep_id or uuid.uuid4()),
        "cycle_id": cycle_id,
        "user_id": whoop_user_id,
        "created_at": iso(end),
        "updated_at": iso(updated_at or end + timedelta(minutes=5)),
        "start": iso(start),
        "end": iso(end),
        "timezone_offset": "-05:00",
        "nap": False,
        "score_state": score_state,
    }
    if score_state == "SCORED":
        obj["score"] = {
            "stage_summary": {
                "total_in_bed_time_milli": 30272735,
                "total_awake_time_milli": 1403507,
                "total_no_data_time_milli": 0,
                "total_light_sleep_time_milli": 14905851,
                "total_slow_wave_sleep_time_milli": 6630370,
                "total_rem_sleep_time_milli": 5879573,
                "sleep_cycle_count": 3,
                "disturbance_count": 12,
            },
            "sleep_needed": {
                "baseline_milli": 27395716,
                "need_from_sleep_debt_milli": 352230,
                "need_from_recent_strain_milli": 208595,
                "need_from_recent_nap_milli": -12312,
            },
            "respiratory_rate": 16.11328125,
            "sleep_performance_percentage": performance,
            "sleep_consistency_percentage": 90.0,
            "sleep_efficiency_percentage": 91.69533848,
        }
    return obj


def cycle(
    *,
    cycle_id: int,
    start: datetime,
    updated_at: datetime | None = None,
    whoop_user_id: int = 10129,
) -> dict[str, Any]:
    """A cycle object (the current cycle has no `end`)."""
    return {
        "id": cycle_id,
        "user_id": whoop_user_id,
        "created_at": iso(start + timedelta(minutes=1)),
        "updated_at": iso(updated_at or start + timedelta(hours=1)),
        "start": iso(start),
        "end": iso(start + timedelta(days=1)),
        "timezone_offset": "-05:00",
        "score_state": "SCORED",
        "score": {
            "strain": 5.2951527,
            "kilojoule": 8288.297,
            "average_heart_rate": 68,
            "max_heart_rate": 141,
        },
    }


def recovery(
    *,
    cycle_id: int,
    sleep_id: uuid.UUID,
    created_at: datetime,
    updated_at: datetime | None = None,
    whoop_user_id: int = 10129,
    score: float = 44.0,
) -> dict[str, Any]:
    """A recovery object."""
    return {
        "cycle_id": cycle_id,
        "sleep_id": str(sleep_id),
        "user_id": whoop_user_id,
        "created_at": iso(created_at),
        "updated_at": iso(updated_at or created_at),
        "score_state": "SCORED",
        "score": {
            "user_calibrating": False,
            "recovery_score": score,
            "resting_heart_rate": 64.0,
            "hrv_rmssd_milli": 31.813562,
            "spo2_percentage": 95.6875,
            "skin_temp_celsius": 33.7,
        },
    }


def workout(
    *, start: datetime, updated_at: datetime | None = None, whoop_user_id: int = 10129
) -> dict[str, Any]:
    """A workout object."""
    end = start + timedelta(hours=1)
    return {
        "id": str(uuid.uuid4()),
        "user_id": whoop_user_id,
        "created_at": iso(end),
        "updated_at": iso(updated_at or end),
        "start": iso(start),
        "end": iso(end),
        "timezone_offset": "-05:00",
        "sport_name": "running",
        "score_state": "SCORED",
        "sport_id": 0,
        "score": {
            "strain": 8.2463,
            "average_heart_rate": 123,
            "max_heart_rate": 146,
            "kilojoule": 1569.34033203125,
            "percent_recorded": 100.0,
            "distance_meter": 1772.77035916,
            "altitude_gain_meter": 46.64384460449,
            "altitude_change_meter": -0.781372010707855,
            "zone_durations": {
                "zone_zero_milli": 300000,
                "zone_one_milli": 600000,
                "zone_two_milli": 900000,
                "zone_three_milli": 900000,
                "zone_four_milli": 600000,
                "zone_five_milli": 300000,
            },
        },
    }
