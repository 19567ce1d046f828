"""`whoop-sync api [--host H] [--port P]`: the read API and the connect flow under uvicorn."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to listen."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8001, help="port (default: 8001)")


def main(args: argparse.Namespace) -> int:
    """Serve the api until interrupted."""
    # Imported here so that other subcommands never load FastAPI and the WHOOP client.
    import uvicorn

    from common.config import load_settings
    from common.logging import configure_logging
    from services.api.app import create_app

    settings = load_settings()
    app = create_app(settings)  # refuses with one ConfigError line before anything is set up
    configure_logging(settings.log_format)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, proxy_headers=True)
    return 0
