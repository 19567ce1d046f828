"""WHOOP's v2 webhook payload: `{"user_id": int, "id": str, "type": str, "trace_id": str}`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WebhookPayload(BaseModel):
    """The payload, checked strictly (a string user id or a boolean is not WHOOP's shape)."""

    # WHOOP may add fields later: they are kept in the recorded body, not refused.
    model_config = ConfigDict(extra="allow", strict=True)

    user_id: int = Field(gt=0, lt=2**63)
    id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=64)
    trace_id: str = Field(min_length=1, max_length=128)
