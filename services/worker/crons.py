"""The periodic work of the worker as arq cron jobs: inbox sweep, reconciliation, PENDING_SCORE
re-fetch, proactive token refresh. arq runs each tick once across all workers (`unique`)."""

from __future__ import annotations

from typing import Any, cast

from arq.cron import CronJob, cron
from arq.typing import WorkerCoroutine

from common.config import Settings
from common.sync.jobs import CRONS


def schedule(seconds: int) -> dict[str, Any]:
    """arq's wall-clock fields for "every `seconds`" (rounded to a divisor of the minute or hour)."""
    if seconds < 60:
        step = max(1, seconds)
        return {"second": set(range(0, 60, step))}
    if seconds < 3600:
        step = max(1, seconds // 60)
        return {"minute": set(range(0, 60, step)), "second": 0}
    step = max(1, min(24, seconds // 3600))
    return {"hour": set(range(0, 24, step)), "minute": 0, "second": 0}


def cron_jobs(settings: Settings) -> list[CronJob]:
    """Every cron with its interval from the settings."""
    return [
        cron(
            cast(WorkerCoroutine, spec.func),
            name=spec.name,
            timeout=spec.timeout,
            **schedule(spec.every(settings)),
        )
        for spec in CRONS
    ]
