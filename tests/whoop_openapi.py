"""WHOOP's OpenAPI document, found through WHOOP_OPENAPI_PATH, and validation against it.

The document is WHOOP's, not ours: it stays outside the project. Tests that need it skip, saying
so, only where it is absent.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "shared" / "reference" / "whoop-openapi.json"


def openapi_path() -> Path:
    """Where WHOOP's OpenAPI document is expected."""
    return Path(os.environ.get("WHOOP_OPENAPI_PATH", str(DEFAULT_PATH)))


@lru_cache(maxsize=1)
def load_document() -> dict[str, Any]:
    """The parsed document; skips the calling test when it is absent."""
    path = openapi_path()
    if not path.is_file():
        pytest.skip(f"WHOOP's OpenAPI document is not at {path} (set WHOOP_OPENAPI_PATH)")
    return dict(json.loads(path.read_text()))


def validate(instance: Any, schema_name: str) -> None:
    """Raise if `instance` does not validate against `#/components/schemas/<schema_name>`."""
    document = load_document()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    OAS30Validator(schema).validate(instance)
