"""Repositories: the only place SQL is written."""

from common.db.repositories.channel import ChannelRepository
from common.db.repositories.connections import ConnectionRepository
from common.db.repositories.guarded_upsert import UpsertSummary
from common.db.repositories.oauth_states import OAuthStateRepository
from common.db.repositories.record_kinds import KINDS, record_key
from common.db.repositories.records import RecordRepository
from common.db.repositories.sync_log import Attempt, SyncLogRepository
from common.db.repositories.webhook_events import WebhookEventRepository

__all__ = [
    "KINDS",
    "Attempt",
    "ChannelRepository",
    "ConnectionRepository",
    "OAuthStateRepository",
    "RecordRepository",
    "SyncLogRepository",
    "UpsertSummary",
    "WebhookEventRepository",
    "record_key",
]
