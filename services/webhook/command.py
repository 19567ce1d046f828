"""`whoop-sync webhook [--host H] [--port P]`: the webhook receiver under uvicorn."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to listen."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8002, help="port (default: 8002)")


def main(args: argparse.Namespace) -> int:
    """Serve the webhook receiver until interrupted."""
    # Imported here so that other subcommands never load FastAPI.
    import signal

    import uvicorn

    from common.config import get_settings
    from common.logging import configure_logging
    from services.webhook.app import create_app

    settings = get_settings()
    app = create_app(settings)  # refuses with one ConfigError line before anything is set up
    configure_logging(settings.log_format)
    # After a graceful shutdown uvicorn raises the SIGTERM it caught again, under the handler that
    # was there before it: by default that kills the process (exit 143). A stop asked for by
    # compose or systemd is a success, so that second SIGTERM meets a handler that does nothing.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, proxy_headers=True)
    return 0
