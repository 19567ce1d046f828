"""Running an HTTP process (`api`, `webhook`, `serve`) under uvicorn, the same way for each."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable

from fastapi import FastAPI

from common.config import Settings, get_settings
from common.logging import configure_logging


def add_listen_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    """`--host` and `--port`."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=default_port, help=f"port (default: {default_port})"
    )


def run_app(create_app: Callable[[Settings], FastAPI], host: str, port: int) -> int:
    """Build the app from the settings (refusing with one ConfigError line), then serve it."""
    import uvicorn

    settings = get_settings()
    app = create_app(settings)
    configure_logging(settings.log_format)
    # After a graceful shutdown uvicorn raises the SIGTERM it caught again, under the handler that
    # was there before it: by default that kills the process (exit 143). A stop asked for by
    # compose or systemd is a success, so that second SIGTERM meets a handler that does nothing.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(app, host=host, port=port, log_config=None, proxy_headers=True)
    return 0
