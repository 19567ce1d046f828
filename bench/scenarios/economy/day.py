"""One live economy day: whoop-sync's api, webhook and worker on PostgreSQL and Redis against the
simulator, the set-up (members connected, backfilled) unbounded and uncounted, then the day under
WHOOP's budget, its changes and reads on schedule, and (overload) the next day's first hour."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.connect import connect_users, wait_backfilled
from bench.infra import (
    Cluster,
    Proc,
    bench_database,
    cluster,
    flush_redis,
    free_port,
    plain_dsn,
    product_env,
    start_pipeline,
)
from bench.openloop import OpenLoopResult, Planned, run_open_loop
from bench.scenarios.economy import clock
from bench.scenarios.economy.changes import drive_changes, score_history
from bench.scenarios.economy.plan import (
    BUDGET_PER_DAY,
    BUDGET_PER_MINUTE,
    HOUR,
    Run,
    changes_plan,
    reads_plan,
)
from bench.scenarios.economy.probes import CycleFeedProbe, FreshnessProbe
from bench.scenarios.economy.where import (
    calls_by_kind,
    left_over,
    reason,
    sleeps_processed,
    when,
    where_calls_went,
)
from bench.sim import SimControl, product_whoop_env, start_sim

UNBOUNDED = {"per_minute": 10**6, "per_day": 10**8}


@dataclass
class DayOutcome:
    """What one live day measured."""

    run: Run
    calls: int
    announced: int
    reads: list[tuple[float, int, str]]
    by_endpoint: dict[str, int]
    sources: dict[str, int]
    statuses: dict[str, int]
    lags: list[float] = field(default_factory=list)
    unresolved: int = 0
    seconds: float = 0.0
    set_up_seconds: float = 0.0
    why: dict[str, Any] = field(default_factory=dict)
    rate_limited: int = 0
    stale_reasons: dict[str, int] = field(default_factory=dict)
    error_codes: dict[str, int] = field(default_factory=dict)
    webhook_answers: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, Any] = field(default_factory=dict)
    cycle_feed_s: list[float] = field(default_factory=list)
    cycle_feed_missing: int = 0
    next_hour: dict[str, Any] = field(default_factory=dict)
    slip_s: float = 0.0


@dataclass
class _Live:
    """The running day's handles."""

    run: Run
    procs: Cluster
    ctl: SimControl
    dsn: str
    env: dict[str, str]
    api_port: int
    hook_port: int
    whoop_ids: list[int] = field(default_factory=list)
    tokens: dict[int, str] = field(default_factory=dict)
    pipeline: tuple[Proc, Proc, Proc] | None = None


async def live_day(run: Run) -> DayOutcome:
    """One live day of whoop-sync, from a fresh database and Redis to its figures."""
    started = time.monotonic()
    async with bench_database("economy") as db:
        await flush_redis()
        with cluster() as procs:
            hook_port, api_port = free_port(), free_port()
            sim = await start_sim(
                procs, users=run.users, days=3, clock_speed=1.0, **UNBOUNDED,
                webhook_url=f"http://127.0.0.1:{hook_port}/webhooks/whoop",
            )  # fmt: skip
            env = product_env(
                db,
                whoop_redirect_uri=f"http://127.0.0.1:{api_port}/api/v1/whoop/callback",
                backfill_days=3,  # as much as an audit's window: a backfill covers what it checks
                freshness=run.freshness,
                audit_days=clock.audit_days(run.factor),
                budget_time_scale=run.factor,
                **clock.scaled(run.factor),
            ) | product_whoop_env(sim)
            live = _Live(run, procs, SimControl(sim), plain_dsn(db), env, api_port, hook_port)
            try:
                set_up_seconds = await _set_up(live)
                outcome = await _the_day(live)
            finally:
                await live.ctl.aclose()
    await flush_redis()
    outcome.seconds = time.monotonic() - started
    outcome.set_up_seconds = set_up_seconds
    return outcome


async def _start(live: _Live, budget: dict[str, int]) -> Proc:
    """(Re)start the product's processes with this budget; the api."""
    if live.pipeline is not None:
        for proc in reversed(live.pipeline):
            proc.stop()
    env = live.env | {f"WHOOPSYNC_{k.upper()}": str(v) for k, v in budget.items()}
    live.pipeline = await start_pipeline(
        live.procs, env, api_port=live.api_port, hook_port=live.hook_port
    )
    return live.pipeline[0]


async def _set_up(live: _Live) -> float:
    """Members connected through the OAuth flow and backfilled, on an unbounded budget (set-up is
    not part of the day); the product is then restarted under the day's budget."""
    unbounded = {"whoop_rate_limit_per_minute": 10**6, "whoop_rate_limit_per_day": 10**8}
    api = await _start(live, unbounded)
    live.whoop_ids = (await live.ctl.user_ids())[: live.run.users]
    await score_history(live.ctl, live.whoop_ids)
    app_users = {w: uuid.uuid4() for w in live.whoop_ids}
    whoop_of = {u: w for w, u in app_users.items()}
    began = time.monotonic()
    tokens = await connect_users(api, [(u, w) for w, u in app_users.items()], 32)

    async def connect_again(stuck: list[uuid.UUID]) -> None:
        print(f"   economy: connecting {len(stuck)} users again", flush=True)
        await connect_users(api, [(u, whoop_of[u]) for u in stuck], 8)

    await wait_backfilled(live.dsn, live.run.users, 900, on_stall=connect_again)
    await asyncio.sleep(2)  # the backfills' last writes
    live.tokens = {w: tokens[u] for w, u in app_users.items()}
    await clock.start_audit_rotation(live.dsn)  # no backlog for the restart's first pass either
    await _start(live, clock.budget_settings())
    return time.monotonic() - began


async def _the_day(live: _Live) -> DayOutcome:
    run, ctl, rng = live.run, live.ctl, random.Random(4)
    reads = reads_plan(run.profile, live.whoop_ids, rng)
    plan: list[Planned] = [
        (at * run.day_seconds, "GET", f"/api/v1/smart/{kind}",
         {"Authorization": f"Bearer {live.tokens[w]}"}, None)
        for at, w, kind in reads
    ]  # fmt: skip
    # The connect flow ran on a real-time clock (codes last 10 minutes); the day runs fast and
    # starts whole: WHOOP's budget at the simulator and whoop-sync's day log both open now.
    await clock.open_day_budget()
    await clock.start_audit_rotation(live.dsn)
    await ctl.http.post("/_sim/clock", json={"seconds": 6 * HOUR, "speed": run.factor})
    await ctl.reset()
    limits = {"per_minute": BUDGET_PER_MINUTE, "per_day": BUDGET_PER_DAY}
    (await ctl.http.post("/_sim/rate-limit", json=limits)).raise_for_status()
    day_started = time.time()
    day_end = day_started + run.day_seconds
    probe, feed = FreshnessProbe(live.dsn), CycleFeedProbe(live.dsn)
    watchers = [asyncio.create_task(p.run()) for p in (probe, feed)]
    changes = asyncio.create_task(
        drive_changes(ctl, changes_plan(live.whoop_ids, rng), run.day_seconds, probe, feed, rng)
    )
    try:
        served = OpenLoopResult(day_started, 0.0)
        if plan:
            served = await run_open_loop(
                live.pipeline[0].url if live.pipeline else "", plan, connections=128,
                drain_seconds=20,
            )  # fmt: skip
        announced = await changes
        await asyncio.sleep(max(0.0, day_end - time.time()))
        day_counters = await ctl.counters()
        next_hour = await _next_hour(live, day_end) if run.next_hour else {}
        await asyncio.sleep(5)  # the last webhooks and feed changes
    finally:
        probe.stop()
        feed.stop()
        await asyncio.gather(*watchers, return_exceptions=True)
    day = DayOutcome(run, 0, announced, reads, {}, served.sources(), served.statuses())
    day.lags, day.unresolved = probe.lags, probe.unresolved
    day.slip_s = served.max_slip_s
    day.webhook_answers = dict(day_counters.get("webhook_answers", {}))
    _read_answers(day, served)
    await _accounts(live, day, (day_started, day_end), feed, next_hour)
    return day


def _read_answers(day: DayOutcome, served: OpenLoopResult) -> None:
    """Why reads answered stale_cache, and the error answers' codes."""
    stale = served.details(lambda _status, source: source == "stale_cache")
    day.stale_reasons = dict(Counter(reason(d) for d in stale))
    codes = Counter(
        f"{status} {reason(detail)}"
        for status, detail in zip(served.status, served.detail, strict=True)
        if status != 200
    )
    day.error_codes = dict(codes)


async def _accounts(
    live: _Live,
    day: DayOutcome,
    span: tuple[float, float],
    feed: CycleFeedProbe,
    next_hour: dict[str, Any],
) -> None:
    """The day's calls (from the simulator's log) by endpoint and kind, its events left over, the
    closed cycles' way to the feed, and the next hour's figures."""
    since, until = when(span[0]), when(span[1])
    log: list[list[Any]] = (await live.ctl.http.get("/_sim/calls")).json()["calls"]
    in_day = [c for c in log if span[0] <= float(c[0]) < span[1]]
    day.calls = len(in_day)
    day.by_endpoint = dict(Counter(str(c[1]) for c in in_day))
    day.rate_limited = sum(1 for c in in_day if int(c[3]) == 429)
    day.kinds = await calls_by_kind(live.dsn, log, since, until)
    liveness = clock.scaled(live.run.factor)["webhook_liveness_seconds"]
    day.why = await where_calls_went(live.dsn, liveness, since, until)
    after = float(next_hour.get("end", span[1]))
    day.events = await left_over(live.dsn, since, until, when(after))
    processed = await sleeps_processed(live.dsn, list(feed.closed.values()))
    for cycle_id, sleep_id in feed.closed.items():
        if cycle_id in feed.seen and sleep_id in processed:
            day.cycle_feed_s.append(feed.seen[cycle_id] - processed[sleep_id])
        else:
            day.cycle_feed_missing += 1
    if next_hour:
        hour = [c for c in log if span[1] <= float(c[0]) < after]
        day.next_hour = {
            "calls": len(hour),
            "rate_limited": sum(1 for c in hour if int(c[3]) == 429),
            "kinds": (await calls_by_kind(live.dsn, log, until, when(after)))["kinds"],
            "events_processed": day.events["processed_after"],
            "events_still_pending": day.events["still_pending"],
        }


async def _next_hour(live: _Live, day_end: float) -> dict[str, Any]:
    """The next day's first simulated hour: its budget opens (the simulator's by itself, 24
    simulated hours after the reset); events left over are processed."""
    await clock.open_day_budget()
    hour_end = day_end + live.run.day_seconds / 24
    await asyncio.sleep(max(0.0, hour_end - time.time()))
    return {"end": hour_end}
