"""The simulator's configuration: one frozen dataclass, filled from CLI options or by tests."""

from __future__ import annotations

from dataclasses import dataclass

# WHOOP retries a failed delivery 5 times within roughly an hour (seconds of simulated time).
WHOOP_RETRY_DELAYS: tuple[float, ...] = (60.0, 180.0, 420.0, 900.0, 1800.0)


@dataclass(frozen=True)
class SimConfig:
    """Everything the simulator needs; times are simulated seconds unless named otherwise."""

    client_id: str = "sim-client"
    client_secret: str = "sim-secret"  # noqa: S105 - the simulator's own demo default
    users: int = 10
    days: int = 30
    seed: int = 1
    webhook_url: str | None = None
    rate_limit_per_minute: int = 100
    rate_limit_per_day: int = 10_000
    access_token_ttl: float = 3600.0
    clock_speed: float = 1.0
    scenario_interval: float | None = None
    webhook_retry_delays: tuple[float, ...] = WHOOP_RETRY_DELAYS
    webhook_timeout: float = 10.0
    webhook_concurrency: int = 16
    first_user_id: int = 10001
    # WHOOP-side loss: this share of webhooks is never sent (for the audit to find).
    webhook_loss: float = 0.0
    # Where the data set is kept between runs (read at start, written at stop); None: not kept.
    state_file: str | None = None
