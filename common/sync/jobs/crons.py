"""The periodic passes: reconciliation, pending scores, token refreshes, retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from common.metrics import RECONCILE_LAST_PASS
from common.retention import prune
from common.sync.context import SyncContext
from common.sync.jobs.reconcile import reconcile, refetch_all_pending
from common.sync.oplog import tag_calls
from common.sync.tokens import refresh_expiring
from common.types import Trigger

__all__ = [
    "TOKEN_REFRESH_AHEAD",
    "prune_retention",
    "reconcile_users",
    "refetch_pending_scores",
    "refresh_tokens",
]

TOKEN_REFRESH_AHEAD = timedelta(minutes=15)


async def reconcile_users(ctx: dict[str, Any]) -> int:
    """One reconciliation pass (SPEC 4.2); how many users it audited."""
    tag_calls(Trigger.RECONCILE)
    audited = (await reconcile(ctx["sync"])).audited
    RECONCILE_LAST_PASS.set_to_current_time()
    return audited


async def refetch_pending_scores(ctx: dict[str, Any]) -> int:
    """Fetch again records still PENDING_SCORE."""
    tag_calls(Trigger.RECONCILE)
    return await refetch_all_pending(ctx["sync"])


async def refresh_tokens(ctx: dict[str, Any]) -> int:
    """Refresh access tokens before they expire."""
    sync: SyncContext = ctx["sync"]
    return await refresh_expiring(
        sync.session_factory, sync.cipher, sync.oauth, sync.locks, TOKEN_REFRESH_AHEAD
    )


async def prune_retention(ctx: dict[str, Any]) -> int:
    """Delete what RETENTION_DAYS no longer keeps (closed events, attempts, states, tombstones,
    the change feed and its pushes)."""
    sync: SyncContext = ctx["sync"]
    return sum((await prune(sync.session_factory, sync.settings.retention_days)).values())
