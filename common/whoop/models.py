"""Typed WHOOP v2 objects, as WHOOP's OpenAPI document describes them.

Every model accepts fields WHOOP adds later (`extra="allow"`) and keeps `.raw`, the object exactly as
WHOOP returned it: that dict, not a re-serialisation, is what gets stored and served.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    ValidatorFunctionWrapHandler,
    model_validator,
)

__all__ = [
    "BasicProfile",
    "BodyMeasurement",
    "Cycle",
    "CycleScore",
    "Recovery",
    "RecoveryScore",
    "ScoreState",
    "Sleep",
    "SleepNeeded",
    "SleepScore",
    "SleepStageSummary",
    "WhoopModel",
    "Workout",
    "WorkoutScore",
    "ZoneDurations",
]


class ScoreState(StrEnum):
    """Scoring state of a cycle, sleep, recovery or workout (kept as plain `str` on the models)."""

    SCORED = "SCORED"
    PENDING_SCORE = "PENDING_SCORE"
    UNSCORABLE = "UNSCORABLE"


class _Part(BaseModel):
    """A nested part of a WHOOP object; tolerant of new fields."""

    model_config = ConfigDict(extra="allow")


class WhoopModel(BaseModel):
    """A top-level WHOOP object that remembers the dict it was parsed from."""

    model_config = ConfigDict(extra="allow")
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        instance = handler(data)
        if isinstance(data, dict) and isinstance(instance, WhoopModel):
            instance._raw = data
        return instance

    @property
    def raw(self) -> dict[str, Any]:
        """The object exactly as WHOOP returned it."""
        return self._raw or self.model_dump(mode="json", exclude_unset=True)


class CycleScore(_Part):
    """Strain and heart rate of a physiological cycle."""

    strain: float
    kilojoule: float
    average_heart_rate: int
    max_heart_rate: int


class Cycle(WhoopModel):
    """A physiological cycle (the current one has no `end`)."""

    id: int
    user_id: int
    created_at: datetime
    updated_at: datetime
    start: datetime
    end: datetime | None = None
    timezone_offset: str
    score_state: str
    score: CycleScore | None = None


class SleepStageSummary(_Part):
    """Time spent in each sleep stage."""

    total_in_bed_time_milli: int
    total_awake_time_milli: int
    total_no_data_time_milli: int
    total_light_sleep_time_milli: int
    total_slow_wave_sleep_time_milli: int
    total_rem_sleep_time_milli: int
    sleep_cycle_count: int
    disturbance_count: int


class SleepNeeded(_Part):
    """Breakdown of the sleep the user needed."""

    baseline_milli: int
    need_from_sleep_debt_milli: int
    need_from_recent_strain_milli: int
    need_from_recent_nap_milli: int


class SleepScore(_Part):
    """Score of a sleep."""

    stage_summary: SleepStageSummary
    sleep_needed: SleepNeeded
    respiratory_rate: float | None = None
    sleep_performance_percentage: float | None = None
    sleep_consistency_percentage: float | None = None
    sleep_efficiency_percentage: float | None = None


class Sleep(WhoopModel):
    """A sleep or nap."""

    id: uuid.UUID
    cycle_id: int
    v1_id: int | None = None
    user_id: int
    created_at: datetime
    updated_at: datetime
    start: datetime
    end: datetime
    timezone_offset: str
    nap: bool
    score_state: str
    score: SleepScore | None = None


class RecoveryScore(_Part):
    """Score of a recovery."""

    user_calibrating: bool
    recovery_score: float
    resting_heart_rate: float
    hrv_rmssd_milli: float
    spo2_percentage: float | None = None
    skin_temp_celsius: float | None = None


class Recovery(WhoopModel):
    """The recovery of a cycle, computed from its sleep."""

    cycle_id: int
    sleep_id: uuid.UUID
    user_id: int
    created_at: datetime
    updated_at: datetime
    score_state: str
    score: RecoveryScore | None = None


class ZoneDurations(_Part):
    """Time spent in each heart-rate zone."""

    zone_zero_milli: int
    zone_one_milli: int
    zone_two_milli: int
    zone_three_milli: int
    zone_four_milli: int
    zone_five_milli: int


class WorkoutScore(_Part):
    """Score of a workout."""

    strain: float
    average_heart_rate: int
    max_heart_rate: int
    kilojoule: float
    percent_recorded: float
    distance_meter: float | None = None
    altitude_gain_meter: float | None = None
    altitude_change_meter: float | None = None
    zone_durations: ZoneDurations


class Workout(WhoopModel):
    """A workout (WHOOP's `WorkoutV2`)."""

    id: uuid.UUID
    v1_id: int | None = None
    user_id: int
    created_at: datetime
    updated_at: datetime
    start: datetime
    end: datetime
    timezone_offset: str
    sport_name: str
    score_state: str
    score: WorkoutScore | None = None
    sport_id: int | None = None


class BasicProfile(WhoopModel):
    """The user's basic profile (`UserBasicProfile`)."""

    user_id: int
    email: str
    first_name: str
    last_name: str


class BodyMeasurement(WhoopModel):
    """The user's body measurements (`UserBodyMeasurement`)."""

    height_meter: float
    weight_kilogram: float
    max_heart_rate: int
