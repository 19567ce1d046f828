"""Signed WHOOP webhooks, made independently of the product (base64 HMAC-SHA256 of
timestamp + raw body with the client secret, timestamp in epoch milliseconds)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SignedWebhook:
    """One webhook ready to send."""

    timestamp: str
    signature: str
    body: bytes

    def headers(self) -> dict[str, str]:
        """The headers WHOOP sends with it."""
        return {
            "Content-Type": "application/json",
            "X-WHOOP-Signature": self.signature,
            "X-WHOOP-Signature-Timestamp": self.timestamp,
        }


def signed(secret: str, whoop_user_id: int, record_id: str, event_type: str) -> SignedWebhook:
    """A WHOOP v2 webhook for one record, with a fresh trace id, signed now."""
    body = json.dumps(
        {
            "user_id": whoop_user_id,
            "id": record_id,
            "type": event_type,
            "trace_id": str(uuid.uuid4()),
        },
        separators=(",", ":"),
    ).encode()
    timestamp = str(int(time.time() * 1000))
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return SignedWebhook(timestamp, base64.b64encode(digest).decode(), body)


def write_file(path: Path, hooks: Iterable[SignedWebhook]) -> int:
    """Write webhooks for bench/lua/webhook.lua (timestamp, signature, body per line)."""
    count = 0
    with path.open("w") as out:
        for hook in hooks:
            out.write(f"{hook.timestamp}\t{hook.signature}\t{hook.body.decode()}\n")
            count += 1
    return count


def sleep_updates(
    secret: str, count: int, users: Iterable[int] = (424242,)
) -> Iterable[SignedWebhook]:
    """`count` sleep.updated webhooks for new record ids, spread over the given WHOOP users."""
    pool = list(users)
    for n in range(count):
        yield signed(secret, pool[n % len(pool)], str(uuid.uuid4()), "sleep.updated")
