"""The error form `{"status": "error", "error": {"code", "message"}}` as OpenAPI models, for every
process's document (api, webhook, serve)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ErrorDetail", "ErrorResponse", "error_example"]


class ErrorDetail(BaseModel):
    """What went wrong: a stable code and a readable message."""

    code: str = Field(examples=["not_connected"])
    message: str = Field(examples=["No WHOOP account is connected for this user"])


class ErrorResponse(BaseModel):
    """The one error form of every endpoint."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "status": "error",
                "error": {"code": "not_connected", "message": "No WHOOP account is connected"},
            }
        }
    )

    status: Literal["error"]
    error: ErrorDetail


def error_example(code: str, message: str) -> dict[str, Any]:
    """An OpenAPI response entry in the error form."""
    return {
        "model": ErrorResponse,
        "description": message,
        "content": {
            "application/json": {
                "example": {"status": "error", "error": {"code": code, "message": message}}
            }
        },
    }
