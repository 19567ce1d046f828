"""Settings: every `WHOOPSYNC_*` variable of the product, read once through `get_settings()`."""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.types import DataType

ENV_PREFIX = "WHOOPSYNC_"


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line naming the variable."""


class Settings(BaseSettings):
    """The product's configuration (SPEC §2); secrets are `SecretStr` and never logged."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = "sqlite+aiosqlite:///./whoop-sync.db"
    redis_url: str | None = None
    whoop_api_base_url: str = "https://api.prod.whoop.com/developer"
    whoop_oauth_base_url: str = "https://api.prod.whoop.com/oauth/oauth2"
    whoop_client_id: str | None = None
    whoop_client_secret: SecretStr | None = None
    whoop_redirect_uri: str | None = None
    jwt_secret: SecretStr | None = None
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    token_encryption_key: SecretStr | None = None
    threshold_recovery_seconds: int = Field(7200, gt=0)
    threshold_sleep_seconds: int = Field(7200, gt=0)
    threshold_cycle_seconds: int = Field(7200, gt=0)
    threshold_workout_seconds: int = Field(3600, gt=0)
    freshness: Literal["webhooks", "threshold"] = "webhooks"
    webhook_liveness_seconds: int = Field(900, gt=0)
    reconcile_interval_seconds: int = Field(900, gt=0)
    audit_days: float = Field(7, gt=0)
    inbox_sweep_seconds: int = Field(60, gt=0)
    # How long a job's claim on an event lasts without renewal (renewed while the job runs).
    inbox_lease_seconds: float = Field(6.0, gt=0)
    # Multiplies every retry back-off of the jobs (tests and soaks shrink time with it).
    retry_backoff_scale: float = Field(1.0, gt=0)
    backfill_days: int = Field(30, ge=0)
    retention_days: int = Field(30, gt=0)
    whoop_rate_limit_per_minute: int = Field(100, gt=0)
    whoop_rate_limit_per_day: int = Field(10000, gt=0)
    # One app user's share of the budget for reads and force_refresh (SPEC 3.1).
    user_refreshes_per_minute: int = Field(12, gt=0)
    user_refreshes_per_day: int = Field(150, gt=0)
    sse_max_per_user: int = Field(5, gt=0)
    # Divides the windows of the WHOOP budget and of each user's share (a minute, a day): benches
    # on a simulated clock shrink time with it, as retry_backoff_scale does for back-offs.
    budget_time_scale: float = Field(1.0, gt=0)
    webhook_tolerance_seconds: int = Field(300, gt=0)
    log_format: Literal["json", "console", "auto"] = "auto"
    app_webhook_url: str | None = None
    app_webhook_secret: SecretStr | None = None
    # The operators' secret for /api/v1/admin and /console (SPEC 3.6); unset, both are off (404).
    admin_token: SecretStr | None = None
    # `transaction`: the database is reached through a transaction-pooling proxy (SPEC §1).
    database_pooler: Literal["none", "transaction"] = "none"

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("must start with postgresql+asyncpg:// or sqlite+aiosqlite://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis:// or rediss://")
        return value

    @field_validator("token_encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        for key in value.get_secret_value().split(","):
            try:
                raw = base64.urlsafe_b64decode(key.strip().encode())
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ValueError(
                    "must be Fernet keys (url-safe base64 of 32 bytes), comma-separated, "
                    "newest first"
                )
        return value

    @field_validator("app_webhook_url")
    @classmethod
    def _app_webhook_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _app_webhook_secret(self) -> Settings:
        if self.app_webhook_url is None:
            return self
        secret = self.app_webhook_secret.get_secret_value() if self.app_webhook_secret else ""
        try:
            ok = (
                secret.startswith("whsec_") and len(base64.b64decode(secret[6:], validate=True)) > 0
            )
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                "WHOOPSYNC_APP_WEBHOOK_SECRET must be whsec_ followed by base64 when "
                "WHOOPSYNC_APP_WEBHOOK_URL is set"
            )
        return self

    @property
    def is_postgres(self) -> bool:
        """True when the database is PostgreSQL (the production backend)."""
        return self.database_url.startswith("postgresql")

    def threshold_seconds(self, data_type: DataType) -> int:
        """Staleness threshold of one data type."""
        return int(getattr(self, f"threshold_{data_type.value}_seconds"))

    def require(self, *names: str) -> None:
        """Raise ConfigError naming the first of these settings that is unset."""
        for name in names:
            if getattr(self, name) in (None, ""):
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} is required but not set")


def load_settings() -> Settings:
    """Read the environment; a bad value becomes one ConfigError line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a check across settings names its variables itself
            raise ConfigError(str(first["msg"]).removeprefix("Value error, ")) from None
        name = f"{ENV_PREFIX}{str(first['loc'][0]).upper()}"
        raise ConfigError(f"{name} is malformed: {first['msg']}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()
