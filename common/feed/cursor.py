"""Feed cursors: opaque to clients, the change number inside (url-safe base64 of `c:<seq>`)."""

from __future__ import annotations

import base64
import binascii
import re

_FORM = re.compile(r"^c:(0|[1-9][0-9]{0,18})$")
# Change numbers are PostgreSQL bigints (SQLite integers alike): a larger one was never handed
# out, and as a query parameter it would overflow the driver instead of reading nothing.
MAX_SEQ = 2**63 - 1


class MalformedCursor(ValueError):
    """The text is not a cursor this feed hands out."""


def encode(seq: int) -> str:
    """The cursor of change number `seq` (0: before the first change)."""
    return base64.urlsafe_b64encode(f"c:{seq}".encode()).decode().rstrip("=")


def decode(cursor: str) -> int:
    """The change number inside a cursor; MalformedCursor otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise MalformedCursor("not a cursor of this feed") from None
    match = _FORM.match(raw)
    if match is None or encode(int(match.group(1))) != cursor:
        raise MalformedCursor("not a cursor of this feed")
    seq = int(match.group(1))
    if seq > MAX_SEQ:
        raise MalformedCursor("not a cursor of this feed (number out of range)")
    return seq
