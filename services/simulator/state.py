"""The simulator's state in one object: world, OAuth server, rate limit, faults, webhooks."""

from __future__ import annotations

import random

import structlog

from services.simulator.clock import Clock
from services.simulator.config import SimConfig
from services.simulator.faults import Faults
from services.simulator.generate import HOUR, user_rng
from services.simulator.limits import Counters, RateLimiter
from services.simulator.oauth import TokenStore
from services.simulator.scenario import Outcome, grow_open_cycle, step_user
from services.simulator.webhooks import WebhookSender
from services.simulator.world import World

log = structlog.get_logger()


class Simulator:
    """Everything one running simulator knows; routes and tests reach it as `app.state.sim`."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.clock = Clock(config.clock_speed)
        self.world = World(config, self.clock)
        self.tokens = TokenStore(int(config.access_token_ttl * 1000))
        self.limiter = RateLimiter(
            self.clock, config.rate_limit_per_minute, config.rate_limit_per_day
        )
        self.counters = Counters()
        self.faults = Faults(rng=random.Random(config.seed))
        self.webhooks = WebhookSender(
            secret=config.client_secret,
            url=config.webhook_url,
            clock=self.clock,
            retry_delays=config.webhook_retry_delays,
            timeout=config.webhook_timeout,
            concurrency=config.webhook_concurrency,
            loss=config.webhook_loss,
            rng=random.Random(config.seed),
        )
        self.deny_next = 0
        self._hours_grown = self.clock.now_ms() // HOUR

    def grow_cycles(self) -> int:
        """Grow every member's open cycle once per simulated hour passed since the last call."""
        hour = self.clock.now_ms() // HOUR
        grown = 0
        while self._hours_grown < hour:
            self._hours_grown += 1
            for uid in self.world.profiles:
                rng = user_rng(self.config.seed, uid, f"hour:{self._hours_grown}")
                grown += grow_open_cycle(self.world.data(uid), rng, self.clock.now_ms())
        return grown

    def step(self, user_id: int | None = None, action: str | None = None) -> list[Outcome]:
        """One scenario step for one member or all; webhooks go to connected members only."""
        self.world.steps += 1
        now = self.clock.now_ms()
        users = [user_id] if user_id is not None else list(self.world.profiles)
        outcomes = []
        for uid in users:
            rng = user_rng(self.config.seed, uid, f"step:{self.world.steps}")
            outcome = step_user(self.world.data(uid), rng, now, action)
            if uid in self.world.connected:
                for event_type, record_id in outcome.events:
                    self.webhooks.send(uid, record_id, event_type)
            outcomes.append(outcome)
        log.info("sim.stepped", step=self.world.steps, users=len(users))
        return outcomes

    def revoke(self, user_id: int) -> None:
        """The member revoked access: tokens die, webhooks stop."""
        self.tokens.revoke_all(user_id)
        self.world.connected.discard(user_id)

    def reset_counters(self) -> None:
        """Zero the call counters and the webhook receiver's answers."""
        self.counters = Counters()
        self.webhooks.answers.clear()

    def reset(self) -> None:
        """Clear faults, counters and rate windows (data, tokens and connections stay); the new
        rate windows are counted from now."""
        self.faults.clear()
        self.reset_counters()
        self.limiter.reset()
        self.deny_next = 0

    async def aclose(self) -> None:
        """Stop deliveries and close the webhook HTTP client."""
        await self.webhooks.close()
