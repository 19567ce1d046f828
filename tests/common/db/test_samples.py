import uuid
from datetime import UTC, datetime

from tests.common.db import samples
from tests.whoop_openapi import validate

START = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def test_samples_validate_against_whoop_openapi() -> None:
    sleep = samples.sleep(start=START)
    validate(sleep, "Sleep")
    validate(samples.cycle(cycle_id=1, start=START), "Cycle")
    validate(
        samples.recovery(cycle_id=1, sleep_id=uuid.UUID(sleep["id"]), created_at=START),
        "Recovery",
    )
    validate(samples.workout(start=START), "WorkoutV2")
    validate(samples.sleep(start=START, score_state="PENDING_SCORE"), "Sleep")
