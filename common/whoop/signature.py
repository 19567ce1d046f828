"""WHOOP webhook signatures: pure functions over the raw request bytes.

WHOOP signs every webhook with its app's client secret:

    X-WHOOP-Signature           = base64(HMAC-SHA256(client_secret, timestamp + raw_body))
    X-WHOOP-Signature-Timestamp = epoch milliseconds, as decimal text

The signature covers the bytes exactly as they arrived, so it is checked before the body is parsed.
`verify` compares in constant time (`hmac.compare_digest`) and refuses a timestamp further than the
tolerance from now in either direction, which bounds how long a captured request can be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from enum import StrEnum

__all__ = ["InvalidSignature", "SignatureFailure", "sign", "verify"]


class SignatureFailure(StrEnum):
    """Why a signature was refused (for logs and metrics, never for the caller)."""

    MISSING = "missing"
    MALFORMED_TIMESTAMP = "malformed_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    MISMATCH = "mismatch"


class InvalidSignature(Exception):
    """The request is not signed by WHOOP, or was signed too long ago."""

    def __init__(self, failure: SignatureFailure) -> None:
        super().__init__(failure.value)
        self.failure = failure


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str | bytes, timestamp: str | int, body: bytes) -> str:
    """The `X-WHOOP-Signature` value of a body sent at `timestamp` (epoch milliseconds)."""
    message = str(timestamp).encode() + body
    digest = hmac.new(_as_bytes(secret), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(
    secret: str | bytes,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    *,
    tolerance_seconds: float,
    now: float | None = None,
) -> None:
    """Raise InvalidSignature unless `signature` signs `body` at a timestamp within the tolerance."""
    if not timestamp or not signature:
        raise InvalidSignature(SignatureFailure.MISSING)
    stamp = timestamp.strip()
    # ASCII digits only: str.isdigit() also takes '²' or '٣', which int() then refuses.
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 16:
        raise InvalidSignature(SignatureFailure.MALFORMED_TIMESTAMP)
    now_ms = (time.time() if now is None else now) * 1000
    if abs(now_ms - int(stamp)) > tolerance_seconds * 1000:
        raise InvalidSignature(SignatureFailure.STALE_TIMESTAMP)
    expected = sign(secret, stamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise InvalidSignature(SignatureFailure.MISMATCH)
