"""The periodic work of the worker as arq cron jobs: inbox sweep, reconciliation, PENDING_SCORE
re-fetch, proactive token refresh. arq runs each tick once across all workers (`unique`)."""

from __future__ import annotations

from typing import Any, cast

from arq.cron import CronJob, cron
from arq.typing import WorkerCoroutine

from common.config import Settings
from common.sync.jobs import CRONS


def _step(count: int, within: int) -> int:
    """The largest divisor of `within` not above `count` (at least 1), so that ticks stay even."""
    count = max(1, min(within, count))
    return next(d for d in range(count, 0, -1) if within % d == 0)


def schedule(seconds: int) -> dict[str, Any]:
    """arq's wall-clock fields for "every `seconds`", rounded down to a divisor of the minute,
    hour or day (45 s runs every 30 s, 7 h every 6 h): a cron ticks on the clock, not from a start."""
    if seconds < 60:
        return {"second": set(range(0, 60, _step(seconds, 60)))}
    if seconds < 3600:
        return {"minute": set(range(0, 60, _step(seconds // 60, 60))), "second": 0}
    return {"hour": set(range(0, 24, _step(seconds // 3600, 24))), "minute": 0, "second": 0}


def cron_jobs(settings: Settings) -> list[CronJob]:
    """Every cron with its interval from the settings."""
    return [
        cron(
            cast(WorkerCoroutine, spec.func),
            name=spec.name,
            timeout=spec.timeout,
            unique=spec.unique,
            **schedule(spec.every(settings)),
        )
        for spec in CRONS
    ]
