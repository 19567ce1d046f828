"""`whoop-sync dev-token --user-id UUID`: a bearer token for local testing, signed with the configured secret."""

from __future__ import annotations

import argparse
import uuid
from datetime import timedelta

from common.auth import mint_token
from common.config import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The user the token is for, and how long it lives."""
    parser.add_argument("--user-id", type=uuid.UUID, required=True, help="the app user's UUID")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default: 3600)")


def main(args: argparse.Namespace) -> int:
    """Print the token; refuse with one line when WHOOPSYNC_JWT_SECRET is unset."""
    settings = load_settings()
    settings.require("jwt_secret")
    assert settings.jwt_secret is not None  # narrowed by require()
    token = mint_token(
        args.user_id,
        settings.jwt_secret.get_secret_value(),
        timedelta(seconds=args.ttl),
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    print(token)
    return 0
