"""The README's economy tables (Markdown), written from a run's figures."""

from __future__ import annotations

import math
from typing import Any

from bench.scenarios.economy.where import KINDS

# The README's typography: an en dash for "none", a multiplication sign, infinity.
DASH, TIMES, INFINITY = "\u2013", "\u00d7", "\u221e"
LABELS = {"app_opens": "app opens", "heavy": "heavy", "feed_only": "feed only"}
LABELS["overload"] = "overload"


def _n(value: Any) -> str:
    if value is None:
        return DASH
    if isinstance(value, float) and math.isinf(value):
        return INFINITY
    if isinstance(value, float) and math.isnan(value):
        return DASH
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):,}"
    return f"{value:g}"


def _reasons(counts: dict[str, int]) -> str:
    if not counts:
        return "0"
    return "; ".join(f"{n:,} {why}" for why, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def markdown(table: list[dict[str, Any]], accounts: list[dict[str, Any]]) -> str:
    """Two tables: calls by design and profile; each day's accounts (budget enforced)."""
    lines = [
        f"| profile | design | how | calls | calls per user-day | {TIMES} ideal | {TIMES} guide "
        "| users "
        "10,000 calls carry | freshness p50 / p99 | stale_cache reads |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        fresh = (
            DASH
            if r["freshness_p50_s"] is None
            else f"{_n(r['freshness_p50_s'])} / {_n(r['freshness_p99_s'])} s"
        )
        design = r["design"].split(" (")[0]
        lines.append(
            f"| {LABELS.get(r['profile'], r['profile'])} ({r['users']:,}) | {design} | {r['how']} "
            f"| {_n(r['calls'])} | {_n(r['calls_per_user_day'])} | {_n(r['ratio_to_ideal'])} "
            f"| {_n(r['ratio_to_guide'])} | {_n(r['users_10k_calls_carry'])} | {fresh} "
            f"| {_n(r['stale_cache_reads'])} |"
        )
    lines += [
        "",
        "| profile | 429s | stale_cache reads by reason | events pending at the day's end "
        "(processed the next hour) | failed events | 5xx (reads / webhooks) | "
        + " | ".join(KINDS)
        + " | valid |",
        "|---|---|---|---|---|---|" + "---|" * len(KINDS) + "---|",
    ]
    for a in accounts:
        events, hour = a["events_at_day_end"], a["next_hour"]
        pending = _n(events.get("pending"))
        if hour:
            pending += f" ({_n(hour.get('events_processed'))})"
        kinds = " | ".join(_n(a["calls_by_kind"].get(k, 0)) for k in KINDS)
        lines.append(
            f"| {LABELS.get(a['profile'], a['profile'])} ({a['users']:,}) "
            f"| {_n(a['rate_limited_429'])} | {_reasons(a['stale_cache_by_reason'])} "
            f"| {pending} | {_n(events.get('failed'))} "
            f"| {a['five_xx']['reads']} / {a['five_xx']['webhooks']} | {kinds} "
            f"| {'NOT VALID: ' + a['not_valid'] if a['not_valid'] else 'yes'} |"
        )
    return "\n".join(lines)
