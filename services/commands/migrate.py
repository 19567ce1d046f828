"""`whoop-sync migrate`: bring the configured database to head."""

from __future__ import annotations

import argparse

import structlog

from common.config import get_settings
from common.db.migrate import upgrade
from common.logging import configure_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: the database comes from WHOOPSYNC_DATABASE_URL."""
    parser.add_argument("--revision", default="head", help="target revision (default: head)")


def main(args: argparse.Namespace) -> int:
    """Run the migrations."""
    settings = get_settings()
    configure_logging(settings.log_format)
    upgrade(settings.database_url, args.revision, pooler=settings.database_pooler)
    structlog.get_logger().info("db.migrated", revision=args.revision)
    return 0
