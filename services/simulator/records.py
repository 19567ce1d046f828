"""One user's WHOOP records in memory: four kinds, each keyed by its WHOOP id, with its sort time."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from services.simulator.clock import parse_ms

KINDS = ("cycle", "sleep", "recovery", "workout")
Body = dict[str, Any]


class BadCursor(ValueError):
    """A `nextToken` this simulator did not hand out."""


@dataclass
class Rec:
    """A record, the time collections sort it by, and when it was over (None: still going)."""

    key_ms: int
    body: Body
    until_ms: int | None = None

    def during_or_after(self, start_ms: int) -> bool:
        """WHOOP's `start`: records that "occurred after or during (inclusive)" it, so a record
        still in progress at `start` (the cycle across midnight) is in."""
        return self.key_ms >= start_ms or self.until_ms is None or self.until_ms > start_ms


@dataclass
class Profile:
    """A simulated WHOOP member."""

    user_id: int
    email: str
    first_name: str
    last_name: str
    height_meter: float
    weight_kilogram: float
    max_heart_rate: int
    timezone_offset: str


@dataclass
class UserData:
    """All records of one member; recoveries are keyed by cycle id, as WHOOP keys them."""

    profile: Profile
    kinds: dict[str, dict[str, Rec]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def get(self, kind: str, key: str) -> Body | None:
        """The record's body, or None."""
        rec = self.kinds[kind].get(key)
        return rec.body if rec else None

    def put(self, kind: str, body: Body) -> Body:
        """Insert or replace a record, recomputing its sort time."""
        self.kinds[kind][record_key(kind, body)] = Rec(
            self._sort_ms(kind, body), body, self._until_ms(kind, body)
        )
        return body

    def delete(self, kind: str, key: str) -> Body | None:
        """Remove a record; returns it, or None if it was absent."""
        rec = self.kinds[kind].pop(key, None)
        return rec.body if rec else None

    def recovery_for_sleep(self, sleep_id: str) -> Body | None:
        """The recovery whose `sleep_id` is this sleep."""
        return next(
            (r.body for r in self.kinds["recovery"].values() if r.body["sleep_id"] == sleep_id),
            None,
        )

    def main_sleep(self, cycle_id: int) -> Body | None:
        """The cycle's main (non-nap) sleep, as `/v2/cycle/{id}/sleep` answers."""
        found = [
            r.body
            for r in self.kinds["sleep"].values()
            if r.body["cycle_id"] == cycle_id and not r.body["nap"]
        ]
        return max(found, key=lambda b: b["start"]) if found else None

    def page(
        self, kind: str, start_ms: int | None, end_ms: int, limit: int, cursor: str | None
    ) -> tuple[list[Body], str | None]:
        """One page, newest first: what was going on at or after `start`, what began before `end`
        (so what intersects it), continuing after `cursor`."""
        after = decode_cursor(cursor) if cursor else None
        ordered = sorted(
            (
                (r.key_ms, key, r.body)
                for key, r in self.kinds[kind].items()
                if (start_ms is None or r.during_or_after(start_ms)) and r.key_ms < end_ms
            ),
            key=lambda t: (t[0], t[1]),
            reverse=True,
        )
        if after is not None:
            ordered = [t for t in ordered if (t[0], t[1]) < after]
        chosen = ordered[:limit]
        more = len(ordered) > limit
        token = encode_cursor(chosen[-1][0], chosen[-1][1]) if more else None
        return [t[2] for t in chosen], token

    def _sort_ms(self, kind: str, body: Body) -> int:
        # WHOOP sorts recoveries by the start of their sleep.
        if kind == "recovery":
            sleep = self.get("sleep", str(body["sleep_id"]))
            return parse_ms(sleep["start"] if sleep else body["created_at"])
        return parse_ms(str(body["start"]))

    def _until_ms(self, kind: str, body: Body) -> int | None:
        # A recovery is over when its sleep is; one without its sleep, when it was created.
        if kind == "recovery":
            sleep = self.get("sleep", str(body["sleep_id"]))
            body = sleep if sleep else {"end": body["created_at"]}
        end = body.get("end")
        return None if end is None else parse_ms(str(end))


def record_key(kind: str, body: Body) -> str:
    """A record's id as a string (a recovery's is its cycle id)."""
    return str(body["cycle_id"] if kind == "recovery" else body["id"])


def encode_cursor(key_ms: int, key: str) -> str:
    """An opaque `next_token`."""
    raw = json.dumps([key_ms, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[int, str]:
    """The position a `next_token` points after; BadCursor if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key_ms, key = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadCursor(token) from exc
    if not isinstance(key_ms, int) or not isinstance(key, str):
        raise BadCursor(token)
    return key_ms, key
