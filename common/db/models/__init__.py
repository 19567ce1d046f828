"""All tables, imported here so that `Base.metadata` knows every one of them."""

from common.db.models.base import Base
from common.db.models.connection import OAuthState, WhoopConnection
from common.db.models.feed import (
    AppDelivery,
    AppDeliveryAttempt,
    Change,
    ChangeHorizon,
    ChangeOutbox,
)
from common.db.models.ops import OpsIncident, WhoopCallHour
from common.db.models.records import Cycle, Recovery, Sleep, Workout
from common.db.models.sync import SyncAttempt, SyncLog
from common.db.models.tombstones import (
    CycleTombstone,
    RecoveryTombstone,
    SleepTombstone,
    WorkoutTombstone,
)
from common.db.models.webhook import ChannelState, WebhookEvent

__all__ = [
    "AppDelivery",
    "AppDeliveryAttempt",
    "Base",
    "Change",
    "ChangeHorizon",
    "ChangeOutbox",
    "ChannelState",
    "Cycle",
    "CycleTombstone",
    "OAuthState",
    "OpsIncident",
    "Recovery",
    "RecoveryTombstone",
    "Sleep",
    "SleepTombstone",
    "SyncAttempt",
    "SyncLog",
    "WebhookEvent",
    "WhoopCallHour",
    "WhoopConnection",
    "Workout",
    "WorkoutTombstone",
]
