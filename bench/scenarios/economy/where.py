"""Where a day's WHOOP calls went and what was left undone, read from the product's database and
the simulator's call log after the day."""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.infra import pg_connect

# Why each read past its threshold went to WHOOP (webhook types): the channel had been quiet for
# the liveness window, or the user had an event received and not yet processed (SPEC §4.1).
_READ_REFRESHES = """
SELECT a.data_type,
       CASE WHEN a.data_type = 'cycle' THEN 'cycle (only syncs confirm it)'
            WHEN NOT EXISTS (
                SELECT 1 FROM whoop_webhook_event e
                WHERE e.received_at <= a.started_at
                  AND e.received_at > a.started_at - make_interval(secs => $1)
            ) THEN 'channel quiet'
            WHEN EXISTS (
                SELECT 1 FROM whoop_webhook_event e
                WHERE e.whoop_user_id = c.whoop_user_id AND e.received_at <= a.started_at
                  AND (e.processed_at IS NULL OR e.processed_at > a.started_at)
            ) THEN 'event unprocessed'
            ELSE 'other' END AS why,
       count(*)
FROM whoop_sync_attempt AS a JOIN whoop_connection AS c ON c.user_id = a.user_id
WHERE a.trigger = 'read' AND a.started_at >= $2
GROUP BY 1, 2 ORDER BY 1, 2
"""
_EVENT_LAGS = """
SELECT extract(epoch FROM processed_at - received_at) FROM whoop_webhook_event
WHERE received_at >= $1 AND received_at < $2 AND processed_at IS NOT NULL
"""
_ATTEMPTS = """
SELECT trigger, data_type, count(*) FROM whoop_sync_attempt
WHERE started_at >= $1 AND started_at < $2
GROUP BY 1, 2 ORDER BY 1, 2
"""
# At the day's end: received and not yet processed; of those, processed by the end of the next
# simulated hour; events closed failed.
_LEFT_OVER = """
SELECT count(*) FILTER (WHERE processed_at IS NULL OR processed_at > $2) AS pending,
       count(*) FILTER (WHERE processed_at > $2 AND processed_at <= $3) AS processed_after,
       count(*) FILTER (WHERE processed_at IS NULL AND status <> 'failed') AS still_pending,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM whoop_webhook_event WHERE received_at >= $1 AND received_at <= $2
"""
_SLEEPS_PROCESSED = """
SELECT record_id, extract(epoch FROM min(processed_at)) FROM whoop_webhook_event
WHERE event_type = 'sleep.updated' AND record_id = ANY($1) AND processed_at IS NOT NULL
GROUP BY record_id
"""
_ATTEMPT_TIMES = """
SELECT c.whoop_user_id, a.data_type, a.trigger, extract(epoch FROM a.started_at), a.duration_ms
FROM whoop_sync_attempt AS a JOIN whoop_connection AS c ON c.user_id = a.user_id
WHERE a.started_at >= $1 ORDER BY a.started_at
"""
COLLECTIONS = {
    "GET /v2/cycle": "cycle",
    "GET /v2/recovery": "recovery",
    "GET /v2/activity/sleep": "sleep",
    "GET /v2/activity/workout": "workout",
}
KINDS = ("by-id", "cycle by night", "cycle by read", "audit", "other")


async def where_calls_went(
    dsn: str, liveness_seconds: int, since: datetime, until: datetime
) -> dict[str, Any]:
    """Sync attempts by trigger, why reads refreshed, how long events waited to be processed."""
    conn = await pg_connect(dsn)
    try:
        refreshes = await conn.fetch(_READ_REFRESHES, float(liveness_seconds), since)
        lags = [float(r[0]) for r in await conn.fetch(_EVENT_LAGS, since, until)]
        attempts = await conn.fetch(_ATTEMPTS, since, until)
    finally:
        await conn.close()
    return {
        "read_refreshes": {f"{r[0]}: {r[1]}": r[2] for r in refreshes},
        "sync_attempts": {f"{r[0]} {r[1]}": r[2] for r in attempts},
        "event_processing_s": {
            "events": len(lags),
            "p50": round(nearest_rank(lags, 0.5), 2),
            "p99": round(nearest_rank(lags, 0.99), 2),
        },
    }


async def left_over(dsn: str, since: datetime, end: datetime, after: datetime) -> dict[str, int]:
    """Events received in the day and unprocessed at its end; processed by `after`; failed."""
    conn = await pg_connect(dsn)
    try:
        row = await conn.fetchrow(_LEFT_OVER, since, end, after)
    finally:
        await conn.close()
    return {k: int(row[k]) for k in ("pending", "processed_after", "still_pending", "failed")}


async def sleeps_processed(dsn: str, sleep_ids: list[str]) -> dict[str, float]:
    """When each night's sleep event was first processed (epoch seconds)."""
    conn = await pg_connect(dsn)
    try:
        rows = await conn.fetch(_SLEEPS_PROCESSED, sleep_ids)
    finally:
        await conn.close()
    return {str(r[0]): float(r[1]) for r in rows}


async def calls_by_kind(
    dsn: str, calls: list[list[Any]], since: datetime, until: datetime
) -> dict[str, Any]:
    """The data calls between `since` and `until` by kind (see `classify`), with the product's
    sync attempts telling what each collection page was for."""
    conn = await pg_connect(dsn)
    try:
        # An attempt started a little before `since` may still be making its calls.
        early = since - timedelta(minutes=5)
        attempts = [tuple(r) for r in await conn.fetch(_ATTEMPT_TIMES, early)]
    finally:
        await conn.close()
    return classify(calls, attempts, since.timestamp(), until.timestamp())


def classify(
    calls: list[list[Any]], attempts: list[tuple[Any, ...]], since: float, until: float
) -> dict[str, Any]:
    """Calls ([epoch, endpoint, WHOOP user, status]) in [since, until) by kind: a record by id
    (webhooks, PENDING_SCORE re-fetches), a cycle page for a new night (a webhook job's cycle
    sync), a cycle page for a read or force_refresh, an audit's page (any type), and the rest
    (other types' read refreshes, backfills, 429s, pages no attempt explains), which is also
    given by its parts. Attempts are (WHOOP user, type, trigger, started epoch, duration ms),
    oldest first: a page belongs to the latest attempt of its user and type started before it."""
    starts: dict[tuple[int, str], list[float]] = defaultdict(list)
    found: dict[tuple[int, str], list[tuple[str, float]]] = defaultdict(list)
    for whoop_user, data_type, trigger, started, duration_ms in attempts:
        key = (int(whoop_user), str(data_type))
        starts[key].append(float(started))
        found[key].append((str(trigger), float(started) + int(duration_ms) / 1000))
    kinds: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for at, endpoint, user, status in calls:
        if not since <= float(at) < until:
            continue
        kind, part = _kind(float(at), str(endpoint), user, int(status), starts, found)
        kinds[kind] += 1
        if kind == "other":
            other[part] += 1
    return {"kinds": {k: kinds.get(k, 0) for k in KINDS}, "other": dict(other)}


def _kind(
    at: float,
    endpoint: str,
    user: int | None,
    status: int,
    starts: dict[tuple[int, str], list[float]],
    found: dict[tuple[int, str], list[tuple[str, float]]],
) -> tuple[str, str]:
    if status == 429:
        return "other", "refused (429)"
    if "{" in endpoint:
        return "by-id", ""
    data_type = COLLECTIONS.get(endpoint)
    if data_type is None or user is None:
        return "other", endpoint
    key = (int(user), data_type)
    index = bisect.bisect_right(starts.get(key, []), at + 0.05) - 1
    if index < 0 or found[key][index][1] + 1.0 < at:
        return "other", f"{data_type} page with no attempt"
    trigger = found[key][index][0]
    if trigger == "reconcile":
        return "audit", ""
    if data_type == "cycle" and trigger == "webhook":
        return "cycle by night", ""
    if data_type == "cycle" and trigger in ("read", "force_refresh"):
        return "cycle by read", ""
    return "other", f"{data_type} {trigger}"


def nearest_rank(values: list[float], share: float) -> float:
    """The nearest-rank percentile (`share` from 0 to 1); NaN without values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


_NUMBERS = re.compile(r"\d+(\.\d+)?")


def reason(text: str | None) -> str:
    """A read's stale_cache reason or error code, with its numbers taken out (for counting)."""
    return _NUMBERS.sub("N", text or "none")[:120]


def when(epoch: float) -> datetime:
    """An aware UTC datetime."""
    return datetime.fromtimestamp(epoch, UTC)
