"""Test doubles at the WHOOP edge: samples checked against WHOOP's OpenAPI document, a fake clock,
a fixed token source."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.common.db import samples
from tests.whoop_openapi import validate

BASE = "https://api.prod.whoop.com/developer"
OAUTH = "https://api.prod.whoop.com/oauth/oauth2"
NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)


def checked(obj: dict[str, Any], schema: str) -> dict[str, Any]:
    """The sample, after validating it against WHOOP's OpenAPI schema."""
    validate(obj, schema)
    return obj


def cycle(cycle_id: int = 93845, **kw: Any) -> dict[str, Any]:
    """A validated Cycle."""
    return checked(samples.cycle(cycle_id=cycle_id, start=NOW - timedelta(days=1), **kw), "Cycle")


def sleep(sleep_id: uuid.UUID | None = None, **kw: Any) -> dict[str, Any]:
    """A validated Sleep."""
    return checked(samples.sleep(start=NOW - timedelta(hours=9), sleep_id=sleep_id, **kw), "Sleep")


def recovery(cycle_id: int = 93845) -> dict[str, Any]:
    """A validated Recovery."""
    obj = samples.recovery(cycle_id=cycle_id, sleep_id=uuid.uuid4(), created_at=NOW)
    return checked(obj, "Recovery")


def workout() -> dict[str, Any]:
    """A validated WorkoutV2."""
    return checked(samples.workout(start=NOW - timedelta(hours=3)), "WorkoutV2")


def profile(user_id: int = 10129) -> dict[str, Any]:
    """A validated UserBasicProfile."""
    obj = {"user_id": user_id, "email": "jo@example.com", "first_name": "Jo", "last_name": "Ro"}
    return checked(obj, "UserBasicProfile")


def body_measurement() -> dict[str, Any]:
    """A validated UserBodyMeasurement."""
    obj = {"height_meter": 1.8288, "weight_kilogram": 90.7185, "max_heart_rate": 200}
    return checked(obj, "UserBodyMeasurement")


def page(
    records: list[dict[str, Any]], schema: str, next_token: str | None = None
) -> dict[str, Any]:
    """A validated collection page."""
    body: dict[str, Any] = {"records": records}
    if next_token:
        body["next_token"] = next_token
    return checked(body, schema)


class FakeClock:
    """A clock that only moves when something sleeps on it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class StaticTokens:
    """A token source whose refresh hands out the next token of a list."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.refreshes: list[str] = []

    async def access_token(self) -> str:
        return self.tokens[0]

    async def refresh(self, rejected: str) -> str:
        self.refreshes.append(rejected)
        self.tokens.pop(0)
        return self.tokens[0]
