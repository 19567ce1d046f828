"""`whoop-sync worker [--burst | --check]`: the arq worker (sync jobs, reconciliation, token refresh,
inbox sweep), or its health check for compose (`["CMD", "whoop-sync", "worker", "--check"]`)."""

from __future__ import annotations

import argparse
import asyncio


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No connection options: Redis and the database come from the settings."""
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--burst", action="store_true", help="run queued jobs, then exit (for scripts and tests)"
    )
    mode.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker wrote its health key lately, else 1 (a container health check)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus' /metrics on this port (off by default: the worker has no HTTP)",
    )


def main(args: argparse.Namespace) -> int:
    """Run the worker until interrupted (or, with --burst, until the queue is empty)."""
    from common.config import get_settings

    settings = get_settings()
    settings.require("redis_url")
    if args.check:
        from services.worker.health import check_health

        healthy, line = asyncio.run(check_health(settings))
        print(line)
        return 0 if healthy else 1

    import uvloop

    from common import tracing
    from common.logging import configure_logging
    from services.worker.settings import create_worker

    configure_logging(settings.log_format)
    tracing.configure("worker")
    if args.metrics_port:
        from prometheus_client import start_http_server

        # prometheus_client's own server, in a thread: the worker runs no web framework.
        start_http_server(args.metrics_port)
    # uvloop, as uvicorn gives the webhook and the api: the worker's time goes to its round trips
    # (PostgreSQL, Redis, WHOOP), whose socket work libuv does in C. arq takes the loop set here.
    asyncio.set_event_loop(uvloop.new_event_loop())
    # arq's own loop: SIGTERM and SIGINT let running jobs finish (or hand them back) before exit.
    create_worker(settings, burst=args.burst).run()
    return 0
