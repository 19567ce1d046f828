"""`whoop-sync webhook [--host H] [--port P]`: the webhook receiver under uvicorn."""

from __future__ import annotations

import argparse

from common.serving import add_listen_arguments, run_app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to listen."""
    add_listen_arguments(parser, 8002)


def main(args: argparse.Namespace) -> int:
    """Serve the webhook receiver until interrupted."""
    # Imported here so that other subcommands never load the webhook app.
    from services.webhook.app import create_app

    return run_app(create_app, args.host, args.port)
