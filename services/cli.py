"""`whoop-sync`: one console script, a subcommand per process.

Each subcommand lives in the module that owns it, as `add_arguments(parser)` and `main(args) -> int`,
and is imported only when it runs, so that `whoop-sync api` never loads the simulator.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sqlalchemy.exc import OperationalError, ProgrammingError

from common.config import ConfigError

# name → (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": ("services.commands.migrate", "bring the database schema to head (Alembic)"),
    "sim": ("services.simulator.main", "a local WHOOP stand-in: v2 API, OAuth, webhooks"),
    "api": ("services.api.command", "read API, connect flow and sync status"),
    "dev-token": ("services.commands.dev_token", "print a bearer token for a user (local testing)"),
    "webhook": ("services.webhook.command", "receive WHOOP webhooks: verify, record, enqueue"),
    "worker": ("services.worker.command", "arq worker: sync jobs, reconciliation, token refresh"),
    "replay": ("services.commands.replay", "enqueue recorded webhook events again"),
    "replay-app": ("services.commands.replay_app", "send change pushes to the app's backend again"),
    "serve": ("services.commands.serve", "webhook + api + worker in one process"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only the `selected` subcommand's module is imported for its options."""
    parser = argparse.ArgumentParser(prog="whoop-sync", description="Keeps WHOOP data in sync.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(selected).parse_args(argv)
    try:
        return int(args._module.main(args))
    except ConfigError as exc:
        print(f"whoop-sync: {exc}", file=sys.stderr)
        return 2
    except (OperationalError, ProgrammingError) as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
        print(
            f"whoop-sync: database error: {reason} (is it reachable, and migrated with "
            "`whoop-sync migrate`?)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
