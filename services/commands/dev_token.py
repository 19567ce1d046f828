"""`whoop-sync dev-token --user-id UUID`: a bearer token for local testing, signed with the configured secret.

The secret is `WHOOPSYNC_JWT_SECRET` from the environment; failing that, the settings of the demo
that `make run` keeps in `.run/demo.json` (or `$DEMO_DIR/demo.json`) under the current directory,
so that a second terminal at the project root mints tokens the running demo accepts; failing that,
the `.env` file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from common.auth import mint_token
from common.config import ENV_PREFIX, load_settings

SECRET = f"{ENV_PREFIX}JWT_SECRET"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The user the token is for, and how long it lives."""
    parser.add_argument("--user-id", type=uuid.UUID, required=True, help="the app user's UUID")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default: 3600)")


def demo_secret() -> str | None:
    """The JWT secret of the demo's settings file, when there is one here."""
    path = Path(os.environ.get("DEMO_DIR", ".run")) / "demo.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    secret = saved.get(SECRET) if isinstance(saved, dict) else None
    if not isinstance(secret, str) or not secret:
        return None
    print(f"whoop-sync: signing with the demo's secret from {path}", file=sys.stderr)
    return secret


def main(args: argparse.Namespace) -> int:
    """Print the token; refuse with one line when no secret is configured."""
    settings = load_settings()
    secret = None if os.environ.get(SECRET) else demo_secret()
    if secret is None:
        settings.require("jwt_secret")
        assert settings.jwt_secret is not None  # narrowed by require()
        secret = settings.jwt_secret.get_secret_value()
    token = mint_token(
        args.user_id,
        secret,
        timedelta(seconds=args.ttl),
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    print(token)
    return 0
