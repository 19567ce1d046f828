"""What confirms a type (SPEC §4.1): a sync of its newest records, or a live webhook channel.

With `WHOOPSYNC_FRESHNESS=webhooks`, while a verified webhook was recorded within
WEBHOOK_LIVENESS_SECONDS, the receiver refused no event in the last hour and no audit miss suspended
the channel, a user's sleep, recovery and workout count as confirmed at the newest receipt, unless the
connection is not active, the user has an event pending or failed (until that event is processed),
the type's latest sync failed, or its backfill has not finished. Cycles have no webhooks: only syncs confirm them. The read hot path
evaluates the same rule inside its one statement (`read_state.py`); this module is the rule in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from common.config import Settings
from common.db.repositories.channel import ChannelRow, LiveRule, user_held_back
from common.metrics import WEBHOOK_CHANNEL_LIVE
from common.types import DataType

__all__ = [
    "REFUSAL_HOLD",
    "SUSPENSION",
    "WEBHOOK_TYPES",
    "ChannelView",
    "LiveRule",
    "channel_view",
    "live_rule",
    "user_held_back",
]

REFUSAL_HOLD = timedelta(hours=1)
SUSPENSION = timedelta(days=1)
WEBHOOK_TYPES = frozenset({DataType.SLEEP, DataType.RECOVERY, DataType.WORKOUT})


def live_rule(settings: Settings, data_type: DataType, now: datetime) -> LiveRule | None:
    """The channel rule for one type, or None where webhooks confirm nothing (cycles, threshold)."""
    if settings.freshness != "webhooks" or data_type not in WEBHOOK_TYPES:
        return None
    return LiveRule(
        now - timedelta(seconds=settings.webhook_liveness_seconds), now - REFUSAL_HOLD, now
    )


@dataclass(frozen=True)
class ChannelView:
    """The channel as a reader sees it: live or not, and its newest receipt."""

    live: bool
    last_event_at: datetime | None
    suspended: bool


def channel_view(settings: Settings, row: ChannelRow, now: datetime) -> ChannelView:
    """Whether the channel confirms now (in `webhooks` mode); sets the channel metric."""
    rule = live_rule(settings, DataType.SLEEP, now)
    suspended = row.suspended_until is not None and row.suspended_until > now
    live = (
        rule is not None
        and row.last_event_at is not None
        and row.last_event_at > rule.live_after
        and (row.last_refused_at is None or row.last_refused_at <= rule.refused_before)
        and not suspended
    )
    WEBHOOK_CHANNEL_LIVE.set(1 if live else 0)
    return ChannelView(live, row.last_event_at, suspended)
