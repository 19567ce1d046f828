"""200 answers as /docs shows them: one realistic example each for the routes an app calls first."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

SLEEP_ID = "ecfc6a15-4661-442f-a9a4-f160dd7afae8"

CHANGES = {
    "changes": [
        {
            "cursor": "Yzo0Mg",
            "data_type": "sleep",
            "action": "upserted",
            "id": SLEEP_ID,
            "updated_at": "2026-11-21T07:12:03.120Z",
            "record": {
                "id": SLEEP_ID,
                "cycle_id": 93845,
                "user_id": 10129,
                "created_at": "2026-11-21T07:05:41.000Z",
                "updated_at": "2026-11-21T07:12:03.120Z",
                "start": "2026-11-20T22:41:08.000Z",
                "end": "2026-11-21T06:58:17.000Z",
                "timezone_offset": "+01:00",
                "nap": False,
                "score_state": "SCORED",
                "score": {"sleep_performance_percentage": 91.0, "respiratory_rate": 15.2},
            },
            "changed_at": "2026-11-21T07:12:04.310518Z",
        },
        {
            "cursor": "Yzo0Mw",
            "data_type": "workout",
            "action": "deleted",
            "id": "0e1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "updated_at": "2026-11-21T08:30:00.000Z",
            "record": None,
            "changed_at": "2026-11-21T08:30:01.027311Z",
        },
    ],
    "next_cursor": "Yzo0Mw",
    "has_more": False,
}

CONNECTION = {
    "connected": True,
    "whoop_user_id": 10129,
    "scopes": ["read:recovery", "read:cycles", "read:sleep", "read:workout", "offline"],
    "status": "active",
    "backfill": {
        "status": "running",
        "days": 30,
        "started_at": "2026-12-01T09:00:01+00:00",
        "finished_at": None,
        "records": {"recovery": 12, "sleep": 14, "cycle": 13, "workout": 5},
        "error": None,
    },
}


def ok(model: type[BaseModel] | None, description: str, example: Any) -> dict[str, Any]:
    """An OpenAPI 200 entry with its schema (when typed) and one example answer."""
    entry: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"example": example}},
    }
    if model is not None:
        entry["model"] = model
    return entry


def model_example(model: type[BaseModel]) -> Any:
    """The example a response model carries in its schema."""
    extra = model.model_config.get("json_schema_extra")
    return extra.get("example") if isinstance(extra, dict) else None
