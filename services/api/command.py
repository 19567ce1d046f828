"""`whoop-sync api [--host H] [--port P]`: the read API and the connect flow under uvicorn."""

from __future__ import annotations

import argparse

from common.serving import add_listen_arguments, run_app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to listen."""
    add_listen_arguments(parser, 8001)


def main(args: argparse.Namespace) -> int:
    """Serve the api until interrupted."""
    # Imported here so that other subcommands never load the api and the WHOOP client.
    from services.api.app import create_app

    return run_app(create_app, args.host, args.port)
