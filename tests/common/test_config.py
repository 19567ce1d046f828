import pytest

from common.config import ConfigError, load_settings
from common.types import DataType


def test_defaults_match_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    s = load_settings()
    assert s.database_url == "sqlite+aiosqlite:///./whoop-sync.db"
    assert s.redis_url is None
    assert [s.threshold_seconds(t) for t in DataType] == [7200, 7200, 7200, 3600]
    assert (s.whoop_rate_limit_per_minute, s.whoop_rate_limit_per_day) == (100, 10000)
    assert (s.reconcile_interval_seconds, s.inbox_sweep_seconds, s.backfill_days) == (900, 60, 30)
    assert s.webhook_tolerance_seconds == 300


def test_malformed_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHOOPSYNC_THRESHOLD_SLEEP_SECONDS", "two hours")
    with pytest.raises(ConfigError, match=r"^WHOOPSYNC_THRESHOLD_SLEEP_SECONDS is malformed"):
        load_settings()


def test_bad_encryption_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHOOPSYNC_TOKEN_ENCRYPTION_KEY", "not-a-key")
    with pytest.raises(ConfigError, match="WHOOPSYNC_TOKEN_ENCRYPTION_KEY"):
        load_settings()


def test_require_names_the_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WHOOPSYNC_WHOOP_CLIENT_SECRET", raising=False)
    monkeypatch.chdir("/")
    with pytest.raises(ConfigError, match="WHOOPSYNC_WHOOP_CLIENT_SECRET is required"):
        load_settings().require("whoop_client_secret")
