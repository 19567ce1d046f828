"""`whoop-sync worker`: the arq worker (sync jobs, reconciliation, token refresh, inbox sweep)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: Redis and the database come from the settings."""
    parser.add_argument(
        "--burst", action="store_true", help="run queued jobs, then exit (for scripts and tests)"
    )


def main(args: argparse.Namespace) -> int:
    """Run the worker until interrupted (or, with --burst, until the queue is empty)."""
    from common.config import get_settings
    from common.logging import configure_logging
    from services.worker.settings import create_worker

    settings = get_settings()
    settings.require("redis_url")
    configure_logging(settings.log_format)
    # arq's own loop: SIGTERM and SIGINT let running jobs finish (or hand them back) before exit.
    create_worker(settings, burst=args.burst).run()
    return 0
