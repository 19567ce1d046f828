"""The table of WHOOP's record resources: where each DataType lives and what it parses into."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from common.types import DataType
from common.whoop.models import Cycle, Recovery, Sleep, WhoopModel, Workout

__all__ = ["PAGE_SIZE", "RESOURCES", "Resource"]

PAGE_SIZE = 25  # WHOOP's maximum `limit`


@dataclass(frozen=True)
class Resource:
    """Where a WHOOP data type lives and what it parses into."""

    model: type[WhoopModel]
    collection: str
    by_id: str | None


RESOURCES: Mapping[DataType, Resource] = {
    DataType.CYCLE: Resource(Cycle, "/v2/cycle", "/v2/cycle/{id}"),
    DataType.SLEEP: Resource(Sleep, "/v2/activity/sleep", "/v2/activity/sleep/{id}"),
    DataType.WORKOUT: Resource(Workout, "/v2/activity/workout", "/v2/activity/workout/{id}"),
    # WHOOP has no recovery-by-id: a recovery is read through its cycle.
    DataType.RECOVERY: Resource(Recovery, "/v2/recovery", "/v2/cycle/{id}/recovery"),
}
