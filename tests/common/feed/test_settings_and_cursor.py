"""The feed's settings refuse a push URL without a `whsec_` secret; cursors round-trip and refuse
anything the feed did not hand out."""

from __future__ import annotations

import pytest

from common.config import ConfigError, load_settings
from common.feed.cursor import MAX_SEQ, MalformedCursor, decode, encode

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize("secret", [None, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_!!"])
def test_a_push_url_needs_a_whsec_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str | None
) -> None:
    monkeypatch.setenv("WHOOPSYNC_APP_WEBHOOK_URL", "https://app.example/hooks/whoop")
    if secret is None:
        monkeypatch.delenv("WHOOPSYNC_APP_WEBHOOK_SECRET", raising=False)
    else:
        monkeypatch.setenv("WHOOPSYNC_APP_WEBHOOK_SECRET", secret)
    with pytest.raises(ConfigError, match="WHOOPSYNC_APP_WEBHOOK_SECRET must be whsec_"):
        load_settings()


def test_push_settings_and_retention_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHOOPSYNC_APP_WEBHOOK_URL", "https://app.example/hooks/whoop")
    monkeypatch.setenv("WHOOPSYNC_APP_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("WHOOPSYNC_RETENTION_DAYS", "7")
    settings = load_settings()
    assert settings.app_webhook_url == "https://app.example/hooks/whoop"
    assert settings.retention_days == 7
    assert SECRET not in repr(settings)


def test_a_push_url_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHOOPSYNC_APP_WEBHOOK_URL", "ftp://app.example/")
    monkeypatch.setenv("WHOOPSYNC_APP_WEBHOOK_SECRET", SECRET)
    with pytest.raises(ConfigError, match="WHOOPSYNC_APP_WEBHOOK_URL is malformed"):
        load_settings()


@pytest.mark.parametrize("seq", [0, 1, 99, 2**62, MAX_SEQ])
def test_cursors_round_trip(seq: int) -> None:
    assert decode(encode(seq)) == seq


@pytest.mark.parametrize(
    "text", ["", "abc", "YzotMQ", encode(5) + "=", encode(5) + "A", "Yzow1", "eDox"]
)
def test_cursors_the_feed_did_not_hand_out_are_refused(text: str) -> None:
    with pytest.raises(MalformedCursor):
        decode(text)


@pytest.mark.parametrize("seq", [MAX_SEQ + 1, 9_999_999_999_999_999_999])
def test_cursors_past_a_bigint_are_refused(seq: int) -> None:
    with pytest.raises(MalformedCursor, match="out of range"):
        decode(encode(seq))
