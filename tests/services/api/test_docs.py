"""/docs as a newcomer reads it: the webhook's body and signature headers are described, and the
routes an app calls first (sync-status, changes, connection) show an example 200 answer that
validates against their own response schema."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import BaseModel

from common.config import Settings
from services.api.examples import CHANGES, CONNECTION, model_example
from services.api.routes.feed import ChangesResponse
from services.api.schemas import ConnectionResponse, SyncStatusResponse
from services.commands.serve import create_app


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The OpenAPI document of `serve` (the api's routes and the webhook's)."""
    settings = Settings(
        whoop_client_id="c",
        whoop_client_secret="s",
        jwt_secret="j" * 32,
        whoop_redirect_uri="http://127.0.0.1/api/v1/whoop/callback",
        token_encryption_key=Fernet.generate_key().decode(),
    )
    return create_app(settings).openapi()


def test_the_webhook_describes_its_body_and_headers(spec: dict[str, Any]) -> None:
    operation = spec["paths"]["/webhooks/whoop"]["post"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"X-WHOOP-Signature", "X-WHOOP-Signature-Timestamp"}
    body = operation["requestBody"]["content"]["application/json"]
    assert set(body["schema"]["required"]) == {"user_id", "id", "type", "trace_id"}
    assert body["example"]["type"] == "sleep.updated"


@pytest.mark.parametrize(
    ("path", "model", "example"),
    [
        ("/api/v1/smart/sync-status", SyncStatusResponse, model_example(SyncStatusResponse)),
        ("/api/v1/smart/changes", ChangesResponse, CHANGES),
        ("/api/v1/whoop/connection", ConnectionResponse, CONNECTION),
    ],
)
def test_first_routes_show_a_valid_200_example(
    spec: dict[str, Any], path: str, model: type[BaseModel], example: Any
) -> None:
    answer = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    # FastAPI leaves the nulls out of the document it renders; the rest is the example as given.
    assert answer["example"]["status" if path.endswith("connection") else next(iter(example))]
    model.model_validate(example)
