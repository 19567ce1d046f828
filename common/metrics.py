"""Prometheus metrics of every process, defined once; `/metrics` serves the default registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBHOOKS = Counter(
    "whoopsync_webhooks_total",
    "Webhook deliveries by outcome (accepted, duplicate, rejected, invalid, unavailable).",
    ["outcome"],
)
JOBS = Counter(
    "whoopsync_jobs_total",
    "Jobs by name and outcome (success, failed, retried, deferred, parked).",
    ["job", "outcome"],
)
WHOOP_CALLS = Counter(
    "whoopsync_whoop_calls_total",
    "Calls to WHOOP by endpoint template and HTTP status ('error' for transport failures).",
    ["endpoint", "status"],
)
WHOOP_RATE_LIMITED = Counter("whoopsync_whoop_rate_limited_total", "429 answers from WHOOP.")
BUDGET_REMAINING = Gauge(
    "whoopsync_whoop_budget_remaining",
    "WHOOP calls left in the current window, as this process last saw it.",
    ["window"],
)
BUDGET_FORECAST = Gauge(
    "whoopsync_whoop_budget_forecast_calls",
    "WHOOP calls the day's window will hold at the current rate (SPEC 4), as last computed.",
)
BUDGET_USERS_CARRIED = Gauge(
    "whoopsync_whoop_budget_users_carried",
    "Connected users the day's WHOOP budget carries at the forecast's calls per user.",
)
FRESHNESS_LAG = Histogram(
    "whoopsync_freshness_lag_seconds",
    "From webhook receipt to the record written.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
READS = Counter(
    "whoopsync_reads_total",
    "Read API answers by data type and source (cache, whoop_api, stale_cache, error).",
    ["data_type", "source"],
)
TOKEN_REFRESHES = Counter(
    "whoopsync_token_refreshes_total",
    "WHOOP token refreshes by outcome (success, refused, error).",
    ["outcome"],
)
WEBHOOK_CHANNEL_LIVE = Gauge(
    "whoopsync_webhook_channel_live",
    "1 while the webhook channel confirms freshness (SPEC 4.1), 0 while the threshold rules.",
)
AUDIT_MISSES = Counter(
    "whoopsync_audit_misses_total",
    "Records an audit found that no webhook announced, by data type.",
    ["data_type"],
)
RECONCILE_FAILURES = Counter(
    "whoopsync_reconcile_failures_total",
    "Users a reconciliation or token pass could not handle (logged, the pass went on), by pass.",
    ["task"],
)
CHANGES_NUMBERED = Counter("whoopsync_changes_total", "Changes numbered into the change feed.")
FEED_LAG = Histogram(
    "whoopsync_feed_lag_seconds",
    "From a change committed with its record to the change numbered in the feed.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
APP_DELIVERIES = Counter(
    "whoopsync_app_deliveries_total",
    "Pushes to the app's backend by outcome (delivered, retried, failed).",
    ["outcome"],
)
APP_DELIVERY_LAG = Histogram(
    "whoopsync_app_delivery_lag_seconds",
    "From a change committed to its push acknowledged (2xx) by the app's backend.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
