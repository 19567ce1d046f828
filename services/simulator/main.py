"""`whoop-sync sim`: run the WHOOP simulator."""

from __future__ import annotations

import argparse
import os

import structlog
import uvicorn

from services.simulator.app import create_app
from services.simulator.config import WHOOP_RETRY_DELAYS, SimConfig

DEFAULT_PORT = 8099


def _delays(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("comma-separated seconds, e.g. 1,2,4,8,16") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The simulator's options; client credentials fall back to the WHOOPSYNC_WHOOP_* variables."""
    env = os.environ.get
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    add("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    add("--client-id", default=env("WHOOPSYNC_WHOOP_CLIENT_ID", "sim-client"))
    add("--client-secret", default=env("WHOOPSYNC_WHOOP_CLIENT_SECRET", "sim-secret"))
    add("--users", type=int, default=10, help="simulated members (default 10)")
    add("--days", type=int, default=30, help="days of history per member (default 30)")
    add("--seed", type=int, default=1, help="seed of the generated data (default 1)")
    add("--webhook-url", default=None, help="where to POST webhooks (default: send none)")
    add("--rate-limit-per-minute", type=int, default=100)
    add("--rate-limit-per-day", type=int, default=10_000)
    add("--access-token-ttl", type=float, default=3600.0, help="seconds (default 3600)")
    add("--clock-speed", type=float, default=1.0, help="simulated seconds per real second")
    add("--scenario-interval", type=float, default=None, help="run a scenario step every N seconds")
    add(
        "--webhook-loss",
        type=float,
        default=0.0,
        help="share of webhooks never sent, 0 to 1 (WHOOP-side loss; default 0)",
    )
    add(
        "--state-file",
        default=None,
        help="keep the data set in this file between runs (read at start, written at stop)",
    )
    add(
        "--webhook-retry-delays",
        type=_delays,
        default=WHOOP_RETRY_DELAYS,
        help="simulated seconds between the 5 retries (default WHOOP's, within an hour)",
    )


def config_from(args: argparse.Namespace) -> SimConfig:
    """The SimConfig the options describe."""
    return SimConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        users=args.users,
        days=args.days,
        seed=args.seed,
        webhook_url=args.webhook_url,
        rate_limit_per_minute=args.rate_limit_per_minute,
        rate_limit_per_day=args.rate_limit_per_day,
        access_token_ttl=args.access_token_ttl,
        clock_speed=args.clock_speed,
        scenario_interval=args.scenario_interval,
        webhook_retry_delays=args.webhook_retry_delays,
        webhook_loss=args.webhook_loss,
        state_file=args.state_file,
    )


def main(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from common.logging import configure_logging

    fmt = os.environ.get("WHOOPSYNC_LOG_FORMAT", "auto")
    configure_logging("json" if fmt == "json" else "console" if fmt == "console" else "auto")
    config = config_from(args)
    structlog.get_logger().info("sim.starting", host=args.host, port=args.port, users=config.users)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")
    return 0
