"""Charts drawn on the server as inline SVG (no script, no external asset): WHOOP calls per hour by
trigger, stacked, and webhook -> row lag p50/p99 per hour, over the last 24 hours."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from markupsafe import Markup

HOURS = 24
WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 12, 28
COLORS = {
    "webhook": "#2563eb",
    "read": "#16a34a",
    "force_refresh": "#84cc16",
    "backfill": "#9333ea",
    "reconcile": "#ea580c",
    "admin": "#db2777",
    "other": "#64748b",
}
P50, P99 = "#2563eb", "#dc2626"


@dataclass(frozen=True)
class Series:
    """One legend entry: a name and its colour."""

    name: str
    color: str


def hours_until(now: datetime) -> list[datetime]:
    """The starts of the last 24 clock hours, the current one last."""
    current = now.replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=HOURS - 1 - i) for i in range(HOURS)]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _label(value: float, unit: str) -> str:
    text = f"{value:g}" if value < 10 else f"{value:,.0f}"
    return f"{text}{unit}"


def _frame(hours: list[datetime], top: float, unit: str, title: str) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        y = TOP + plot_h * i / 4
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="#e2e8f0" stroke-width="1"/>'
        )
        value = top * (4 - i) / 4
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#64748b">{escape(_label(value, unit))}</text>'
        )
    step = plot_w / len(hours)
    for i, hour in enumerate(hours):
        if i % 6 == 0 or i == len(hours) - 1:
            x = LEFT + step * (i + 0.5)
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11" '
                f'fill="#64748b">{hour:%H:00}</text>'
            )
    return parts


def calls_chart(
    rows: Sequence[tuple[datetime, str, int]], now: datetime
) -> tuple[Markup, list[Series]]:
    """Stacked bars of WHOOP calls per hour by trigger, and the legend of the triggers present."""
    hours = hours_until(now)
    per_hour: dict[datetime, dict[str, int]] = defaultdict(dict)
    for hour, trigger, calls in rows:
        per_hour[hour][trigger] = per_hour[hour].get(trigger, 0) + calls
    triggers = [t for t in COLORS if any(t in per_hour[h] for h in hours)]
    triggers += sorted({t for h in hours for t in per_hour[h]} - set(triggers))
    top = _nice_max(max((sum(per_hour[h].values()) for h in hours), default=0))
    parts = _frame(hours, top, "", "WHOOP calls per hour by trigger, last 24 hours")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / HOURS
    for i, hour in enumerate(hours):
        base = float(TOP + plot_h)
        for trigger in triggers:
            calls = per_hour[hour].get(trigger, 0)
            if not calls:
                continue
            height = plot_h * calls / top
            base -= height
            parts.append(
                f'<rect x="{LEFT + step * i + 2:.1f}" y="{base:.1f}" width="{step - 4:.1f}" '
                f'height="{height:.1f}" fill="{COLORS.get(trigger, "#94a3b8")}">'
                f"<title>{hour:%H:00} {escape(trigger)}: {calls}</title></rect>"
            )
    parts.append("</svg>")
    legend = [Series(t, COLORS.get(t, "#94a3b8")) for t in triggers]
    return Markup("".join(parts)), legend  # noqa: S704 - every value above is escaped or numeric


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of sorted values."""
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def lag_by_hour(
    samples: Sequence[tuple[datetime, datetime]], now: datetime
) -> list[tuple[datetime, float | None, float | None, int]]:
    """(hour, p50, p99, events) of the webhook -> row lag, by the hour the event was received."""
    buckets: dict[datetime, list[float]] = defaultdict(list)
    for received, processed in samples:
        hour = received.replace(minute=0, second=0, microsecond=0)
        buckets[hour].append(max(0.0, (processed - received).total_seconds()))
    out: list[tuple[datetime, float | None, float | None, int]] = []
    for hour in hours_until(now):
        values = sorted(buckets.get(hour, []))
        if values:
            out.append((hour, percentile(values, 0.5), percentile(values, 0.99), len(values)))
        else:
            out.append((hour, None, None, 0))
    return out


def lag_chart(
    lags: Sequence[tuple[datetime, float | None, float | None, int]],
) -> tuple[Markup, list[Series]]:
    """p50 and p99 of the webhook -> row lag per hour, as two lines (gaps where nothing came)."""
    hours = [hour for hour, *_ in lags]
    top = _nice_max(max((p99 for _, _, p99, _ in lags if p99 is not None), default=0.0))
    parts = _frame(hours, top, "s", "Webhook to row lag per hour, p50 and p99, last 24 hours")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / HOURS
    for which, color in ((0, P50), (1, P99)):
        points = []
        for i, (hour, p50, p99, _) in enumerate(lags):
            value = (p50, p99)[which]
            if value is None:
                continue
            x, y = LEFT + step * (i + 0.5), TOP + plot_h * (1 - min(value, top) / top)
            points.append((x, y, value, hour))
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
        for x, y, value, hour in points:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}">'
                f"<title>{hour:%H:00}: {value:.3g} s</title></circle>"
            )
    parts.append("</svg>")
    legend = [Series("p50", P50), Series("p99", P99)]
    return Markup("".join(parts)), legend  # noqa: S704 - every value above is escaped or numeric
