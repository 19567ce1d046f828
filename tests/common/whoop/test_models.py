"""The typed models: WHOOP's documented shapes, unscored records, `.raw` kept as given."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from common.whoop.models import Cycle, Recovery, ScoreState, Sleep, Workout
from tests.common.whoop import fakes


def test_pending_sleep_has_no_score() -> None:
    obj = fakes.sleep(score_state="PENDING_SCORE")
    sleep = Sleep.model_validate(obj)
    assert sleep.score is None
    assert sleep.score_state == ScoreState.PENDING_SCORE
    assert sleep.raw is obj


def test_scored_records_expose_typed_scores() -> None:
    cycle = Cycle.model_validate(fakes.cycle())
    recovery = Recovery.model_validate(fakes.recovery())
    workout = Workout.model_validate(fakes.workout())
    assert cycle.score is not None
    assert cycle.score.max_heart_rate == 141
    assert recovery.score is not None
    assert recovery.score.recovery_score == 44.0
    assert isinstance(recovery.sleep_id, uuid.UUID)
    assert workout.score is not None
    assert workout.score.zone_durations.zone_five_milli == 300000


def test_current_cycle_has_no_end() -> None:
    obj = fakes.cycle()
    del obj["end"]
    fakes.checked(obj, "Cycle")
    assert Cycle.model_validate(obj).end is None


def test_missing_required_field_is_rejected() -> None:
    obj = fakes.cycle()
    del obj["user_id"]
    with pytest.raises(ValidationError):
        Cycle.model_validate(obj)
