"""Webhook signatures: WHOOP's documented scheme, constant-time check, timestamp tolerance."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from common.whoop.signature import InvalidSignature, SignatureFailure, sign, verify

SECRET = "client-secret"
BODY = b'{"user_id":10129,"id":"ecfc6a15-4661-442f-a9a4-f160dd7afae8","type":"sleep.updated","trace_id":"t-1"}'
NOW_S = 1_700_000_000.0
STAMP = str(int(NOW_S * 1000))


def test_sign_matches_whoops_documented_formula() -> None:
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), STAMP.encode() + BODY, hashlib.sha256).digest()
    ).decode()
    assert sign(SECRET, STAMP, BODY) == expected
    assert sign(SECRET.encode(), int(STAMP), BODY) == expected


def test_accepts_a_valid_signature() -> None:
    verify(SECRET, STAMP, BODY, sign(SECRET, STAMP, BODY), tolerance_seconds=300, now=NOW_S)


def _failure(timestamp: str | None, body: bytes, signature: str | None) -> SignatureFailure:
    with pytest.raises(InvalidSignature) as info:
        verify(SECRET, timestamp, body, signature, tolerance_seconds=300, now=NOW_S)
    return info.value.failure


def test_rejects_a_wrong_signature() -> None:
    assert _failure(STAMP, BODY, sign("other-secret", STAMP, BODY)) is SignatureFailure.MISMATCH


def test_rejects_a_changed_body() -> None:
    signature = sign(SECRET, STAMP, BODY)
    assert _failure(STAMP, BODY + b" ", signature) is SignatureFailure.MISMATCH


def test_rejects_a_signature_over_another_timestamp() -> None:
    other = str(int(STAMP) + 1)
    assert _failure(other, BODY, sign(SECRET, STAMP, BODY)) is SignatureFailure.MISMATCH


@pytest.mark.parametrize(
    ("timestamp", "signature"), [(None, "x"), (STAMP, None), ("", ""), (STAMP, "")]
)
def test_rejects_a_missing_header(timestamp: str | None, signature: str | None) -> None:
    assert _failure(timestamp, BODY, signature) is SignatureFailure.MISSING


@pytest.mark.parametrize("offset_s", [-301, 301, -86_400])
def test_rejects_a_stale_timestamp(offset_s: int) -> None:
    stamp = str(int((NOW_S + offset_s) * 1000))
    assert _failure(stamp, BODY, sign(SECRET, stamp, BODY)) is SignatureFailure.STALE_TIMESTAMP


@pytest.mark.parametrize("offset_s", [-299, 299])
def test_accepts_a_timestamp_within_the_tolerance(offset_s: int) -> None:
    stamp = str(int((NOW_S + offset_s) * 1000))
    verify(SECRET, stamp, BODY, sign(SECRET, stamp, BODY), tolerance_seconds=300, now=NOW_S)


@pytest.mark.parametrize("timestamp", ["abc", "-1", "1.5e12", "1" * 30, "²", "١٧٦٤٦٤٠٠٠٠٠٠٠"])
def test_rejects_a_malformed_timestamp(timestamp: str) -> None:
    assert _failure(timestamp, BODY, "sig") is SignatureFailure.MALFORMED_TIMESTAMP


def test_timestamp_in_seconds_is_stale() -> None:
    stamp = str(int(NOW_S))  # seconds instead of milliseconds: 1970 as far as WHOOP's format goes
    assert _failure(stamp, BODY, sign(SECRET, stamp, BODY)) is SignatureFailure.STALE_TIMESTAMP
