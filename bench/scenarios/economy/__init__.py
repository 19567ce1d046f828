"""4. Upstream economy: one simulated day for 1,000 users, with WHOOP-like changes, under two read
profiles; WHOOP calls of whoop-sync (`webhooks` and `threshold`), of the guide's design, of hourly
polling, and of the ideal.

The day: each member's night (a sleep created pending, then scored, its recovery likewise), about 1.2
workouts (some scored later), and the open cycle growing every simulated hour (strain, kilojoules;
WHOOP sends no cycle webhooks). Reads: *app opens* (six opens in waking hours, each reading recovery,
sleep and cycle, plus two workout reads) or *heavy* (20 reads of every type in waking hours).

Every duration of a day is divided by one factor: the simulator's clock runs FACTOR times faster,
and the thresholds, liveness window, reconcile interval and inbox sweep are divided by it (the
settings take whole seconds: the full run's factors, 75 for app opens and 150 for heavy, divide all
but the inbox sweep exactly). A day the machine could not keep up with (reads unanswered, changes
never seen, events waiting for the worker) is marked NOT VALID. Set-up (the
history's pending records scored, the members connected through the OAuth flow, their backfills) is
not part of the day: the counters start after it. Budgets are unbounded, so that each design's count
is what it asks of WHOOP; what 10,000 calls a day carry follows from the count.
whoop-sync runs for real (api, webhook and worker processes on PostgreSQL and Redis) and its calls are
counted at the simulator. The guide's design, hourly polling and the ideal are computed from the same
generated change and read schedule (running them would only replay the schedule against a counter):
- guide: no webhooks; a read past its type's threshold since the type's last fetch costs one call;
- hourly polling over 30 days: every user, every type, every hour, one page per 25 records;
- ideal: one fetch per record version WHOOP announces, plus one cycle fetch per cycle read past its
  threshold since the last cycle fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis

from bench.connect import connect_users, wait_backfilled
from bench.infra import (
    REDIS_URL,
    bench_database,
    cluster,
    flush_redis,
    free_port,
    plain_dsn,
    product_env,
    start_pipeline,
)
from bench.openloop import Planned, run_open_loop
from bench.options import Options
from bench.result import Row, ScenarioResult
from bench.scenarios.common import at_most, info
from bench.sim import SimControl, data_calls, product_whoop_env, start_sim

DAY = 86400.0
HOUR = 3600.0
THRESHOLDS = {"recovery": 7200.0, "sleep": 7200.0, "cycle": 7200.0, "workout": 3600.0}
WAKING = (7 / 24, 23 / 24)
# Hourly polling of 30 days: ~30 cycles, sleeps and recoveries, ~36 workouts: two pages each.
POLL_PAGES_PER_HOUR = sum(math.ceil(n / 25) for n in (30, 31, 30, 36))
BUDGET_PER_DAY = 10_000
TABLES = {"sleep": ("whoop_sleep", "id"), "workout": ("whoop_workout", "id")}
TABLES["recovery"] = ("whoop_recovery", "cycle_id")
RESULTS = Path(__file__).resolve().parents[1] / "results"


@dataclass(frozen=True)
class Run:
    """One live day of whoop-sync: its freshness mode, read profile and size."""

    freshness: str
    profile: str
    users: int
    day_seconds: float


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


def changes_plan(whoop_ids: list[int], rng: random.Random) -> list[tuple[float, int, str]]:
    """(day fraction, member, action): a night's sleep, its scoring, ~1.2 workouts and theirs."""
    plan = []
    for member in whoop_ids:
        wake = rng.uniform(0.2, 0.4)
        plan.append((wake, member, "new_sleep"))
        plan.append((wake + rng.uniform(5, 30) / 1440, member, "rescore"))
        plan.append((wake + rng.uniform(30, 90) / 1440, member, "rescore"))
        for _ in range(1 + (rng.random() < 0.2)):
            at = rng.uniform(0.3, 0.92)
            plan.append((at, member, "workout"))
            # WHOOP scores every workout: one created PENDING_SCORE (two in five) is scored
            # 10-40 minutes later; after one created scored the rescore is a no-op.
            plan.append((at + rng.uniform(10, 40) / 1440, member, "rescore"))
    return sorted(plan)


def reads_plan(
    profile: str, whoop_ids: list[int], rng: random.Random
) -> list[tuple[float, int, str]]:
    """(day fraction, member, type), in waking hours."""
    reads: list[tuple[float, int, str]] = []
    for member in whoop_ids:
        if profile == "app_opens":
            for _ in range(6):
                at = rng.uniform(*WAKING)
                reads += [(at, member, kind) for kind in ("recovery", "sleep", "cycle")]
            reads += [(rng.uniform(*WAKING), member, "workout") for _ in range(2)]
        else:
            reads += [(rng.uniform(*WAKING), member, k) for k in THRESHOLDS for _ in range(20)]
    return sorted(reads)


def guide_calls(reads: list[tuple[float, int, str]]) -> int:
    """The guide's design: a read past its threshold since the last fetch fetches (one call)."""
    last: dict[tuple[int, str], float] = {}
    calls = 0
    for fraction, member, kind in reads:
        at = fraction * DAY
        if at - last.get((member, kind), 0.0) >= THRESHOLDS[kind]:
            calls += 1
            last[(member, kind)] = at
    return calls


def ideal_calls(announced: int, reads: list[tuple[float, int, str]]) -> int:
    """One fetch per announced version, one cycle fetch per cycle read past its threshold."""
    return announced + guide_calls([r for r in reads if r[2] == "cycle"])


def polling_calls(users: int) -> int:
    """Hourly polling of every user's 30 days, every type."""
    return users * 24 * POLL_PAGES_PER_HOUR


def _scaled(factor: float) -> dict[str, int]:
    """The product's windows on the fast clock. The settings take whole seconds, so the factor is
    chosen to divide them exactly (50: liveness 18 s, thresholds 144 s and 72 s, reconcile 18 s);
    only the inbox sweep (60 s, a safety net for lost jobs) rounds to 1 s."""

    def scale(seconds: float) -> int:
        return max(1, round(seconds / factor))

    return {
        **{f"threshold_{k}_seconds": scale(v) for k, v in THRESHOLDS.items()},
        "webhook_liveness_seconds": scale(900),
        "reconcile_interval_seconds": scale(900),
        "inbox_sweep_seconds": scale(60),
    }


def _simulated(scaled: dict[str, int], factor: float) -> dict[str, float]:
    """What the scaled settings amount to on the simulated clock (seconds)."""
    return {k: round(v * factor, 1) for k, v in scaled.items()}


def _clock(day_seconds: float) -> dict[str, Any]:
    """One profile's day length, clock factor and scaled settings (real and simulated seconds)."""
    factor = DAY / day_seconds
    scaled = _scaled(factor)
    return {
        "simulated_day_real_seconds": day_seconds,
        "time_factor": factor,
        "scaled_settings": scaled,
        "scaled_settings_on_simulated_clock": _simulated(scaled, factor),
    }


async def _score_history(ctl: SimControl, whoop_ids: list[int]) -> int:
    """Score what the generated history left PENDING_SCORE (the newest night, some workouts):
    the day starts after a night WHOOP scored long ago. Members are not connected yet, so no
    webhook is sent; how many records were scored."""
    gate, scored = asyncio.Semaphore(32), 0

    async def one(member: int) -> None:
        nonlocal scored
        async with gate:
            for _ in range(12):
                outcomes = await ctl.step(member, "rescore")
                if not any(o["action"] for o in outcomes):
                    return
                scored += 1

    await asyncio.gather(*(one(m) for m in whoop_ids))
    return scored


def _audit_days(factor: float) -> float:
    return 7 / factor


class FreshnessProbe:
    """Samples announced changes and waits for the cache to hold them: the first `synced_at` (a
    write, or a fetch noted after the change) at or after the change is the moment it was readable."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.waiting: dict[str, dict[Any, float]] = {kind: {} for kind in TABLES}
        self.lags: list[float] = []
        self._stop = asyncio.Event()

    def add(self, kind: str, key: str, changed_at: float) -> None:
        """Wait for this record's version of `changed_at` (epoch seconds)."""
        typed: Any = int(key) if kind == "recovery" else uuid.UUID(key)
        self.waiting[kind].setdefault(typed, changed_at)

    async def run(self) -> None:
        """Poll every half second until stopped."""
        conn = await asyncpg.connect(self.dsn)
        try:
            while not self._stop.is_set():
                await self._poll(conn)
                await asyncio.sleep(0.5)
            await self._poll(conn)
        finally:
            await conn.close()

    async def _poll(self, conn: asyncpg.Connection) -> None:
        for kind, waiting in self.waiting.items():
            if not waiting:
                continue
            table, key = TABLES[kind]
            rows = await conn.fetch(
                f"SELECT {key} AS k, synced_at FROM {table} WHERE {key} = ANY($1)",  # noqa: S608
                list(waiting),
            )
            for row in rows:
                changed_at = waiting[row["k"]]
                synced = row["synced_at"].timestamp()
                if synced >= changed_at:
                    self.lags.append(synced - changed_at)
                    del waiting[row["k"]]

    def stop(self) -> None:
        """Stop after one last poll."""
        self._stop.set()

    @property
    def unresolved(self) -> int:
        """Sampled changes never seen in the cache."""
        return sum(len(w) for w in self.waiting.values())


async def _drive_changes(
    ctl: SimControl,
    plan: list[tuple[float, int, str]],
    day_seconds: float,
    probe: FreshnessProbe,
    rng: random.Random,
) -> int:
    """Run the day's steps on schedule, grow open cycles hourly; how many versions were announced."""
    start, announced, tasks = time.monotonic(), 0, []
    failed_steps: list[str] = []

    async def step(member: int, action: str) -> None:
        nonlocal announced
        changed_at = time.time()
        try:
            outcomes = await ctl.step(member, action)
        except httpx.HTTPError:  # a dropped keep-alive connection: the step is counted lost
            failed_steps.append(action)
            return
        for outcome in outcomes:
            updates = [e for e in outcome["events"] if e["type"].endswith(".updated")]
            announced += len(updates)
            for change in outcome["changed"]:
                if change["kind"] in TABLES and rng.random() < 0.25:
                    probe.add(change["kind"], change["id"], changed_at)

    async def hours() -> None:
        for hour in range(1, 25):
            delay = start + hour * day_seconds / 24 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            with contextlib.suppress(httpx.HTTPError):
                await ctl.http.post("/_sim/cycles/grow")

    grower = asyncio.create_task(hours())
    for fraction, member, action in plan:
        delay = start + fraction * day_seconds - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(step(member, action)))
    await asyncio.gather(*tasks)
    await grower
    if failed_steps:
        print(f"   economy: {len(failed_steps)} scenario steps got no answer", flush=True)
    return announced


async def _day(run: Run) -> DayOutcome:
    """One live day of whoop-sync."""
    day_seconds = run.day_seconds
    factor = DAY / day_seconds
    rng = random.Random(4)
    scaled = _scaled(factor)
    # Unbounded: the day counts what each design asks of WHOOP. Under the real 10,000 a day a
    # design asking for more would have its work deferred past the day and its count capped; what
    # the budget carries is computed from the count (users 10,000 calls a day carry).
    per_day = 10**8
    started = time.monotonic()
    async with bench_database("economy") as db:
        dsn = plain_dsn(db)
        await flush_redis()
        with cluster() as procs:
            hook_port, api_port = free_port(), free_port()
            sim = await start_sim(
                procs, users=run.users, days=3, per_minute=10**6, per_day=10**8,
                clock_speed=1.0, webhook_url=f"http://127.0.0.1:{hook_port}/webhooks/whoop",
            )  # fmt: skip
            env = product_env(
                db,
                whoop_redirect_uri=f"http://127.0.0.1:{api_port}/api/v1/whoop/callback",
                whoop_rate_limit_per_minute=round(100 * factor),
                whoop_rate_limit_per_day=per_day,
                backfill_days=3,  # as much as an audit's window: a backfill covers what it checks
                freshness=run.freshness,
                audit_days=_audit_days(factor),
                **scaled,
            ) | product_whoop_env(sim)
            api, _hook, _worker = await start_pipeline(
                procs, env, api_port=api_port, hook_port=hook_port
            )
            ctl = SimControl(sim)
            try:
                whoop_ids = (await ctl.user_ids())[: run.users]
                await _score_history(ctl, whoop_ids)
                app_users = {w: uuid.uuid4() for w in whoop_ids}
                set_up = time.monotonic()
                tokens = await connect_users(api, [(u, w) for w, u in app_users.items()], 32)
                whoop_of = {u: w for w, u in app_users.items()}

                async def connect_again(stuck: list[uuid.UUID]) -> None:
                    print(f"   economy: connecting {len(stuck)} users again", flush=True)
                    await connect_users(api, [(u, whoop_of[u]) for u in stuck], 8)

                await wait_backfilled(dsn, run.users, 900, on_stall=connect_again)
                set_up_seconds = time.monotonic() - set_up
                reads = reads_plan(run.profile, whoop_ids, rng)
                plan: list[Planned] = [
                    (
                        fraction * day_seconds,
                        "GET",
                        f"/api/v1/smart/{kind}",
                        {"Authorization": f"Bearer {tokens[app_users[w]]}"},
                        None,
                    )
                    for fraction, w, kind in reads
                ]
                await asyncio.sleep(2)  # the backfills' last writes
                # The day's budget starts whole: connecting and backfilling are not part of the day.
                await _fresh_day_budget()
                # The connect flow ran on a real-time clock (codes last 10 minutes); the day runs fast.
                await ctl.http.post("/_sim/clock", json={"seconds": 6 * HOUR, "speed": factor})
                await ctl.reset()
                day_started = datetime.now(UTC)
                probe = FreshnessProbe(dsn)
                prober = asyncio.create_task(probe.run())
                changes = asyncio.create_task(
                    _drive_changes(ctl, changes_plan(whoop_ids, rng), day_seconds, probe, rng)
                )
                try:
                    served = await run_open_loop(api.url, plan, connections=128, drain_seconds=20)
                    announced = await changes
                    await asyncio.sleep(5)  # the day's last webhooks
                    counters = await ctl.counters()
                finally:
                    probe.stop()
                    await asyncio.gather(prober, return_exceptions=True)
                why = await _why(dsn, scaled["webhook_liveness_seconds"], day_started)
            finally:
                await ctl.aclose()
    await flush_redis()
    return DayOutcome(
        run=run,
        calls=data_calls(counters),
        announced=announced,
        reads=reads,
        by_endpoint=dict(counters.get("by_endpoint", {})),
        sources=served.sources(),
        statuses=served.statuses(),
        lags=probe.lags,
        unresolved=probe.unresolved,
        seconds=time.monotonic() - started,
        set_up_seconds=set_up_seconds,
        why=why,
    )


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
WHERE received_at >= $1 AND processed_at IS NOT NULL
"""
_ATTEMPTS = """
SELECT trigger, data_type, count(*) FROM whoop_sync_attempt WHERE started_at >= $1
GROUP BY 1, 2 ORDER BY 1, 2
"""


async def _why(dsn: str, liveness_seconds: int, since: datetime) -> dict[str, Any]:
    """Where the day's calls went: sync attempts by trigger, why reads refreshed, event lags."""
    conn = await asyncpg.connect(dsn)
    try:
        refreshes = await conn.fetch(_READ_REFRESHES, float(liveness_seconds), since)
        lags = [float(r[0]) for r in await conn.fetch(_EVENT_LAGS, since)]
        attempts = await conn.fetch(_ATTEMPTS, since)
    finally:
        await conn.close()
    return {
        "read_refreshes": {f"{r[0]}: {r[1]}": r[2] for r in refreshes},
        "sync_attempts": {f"{r[0]} {r[1]}": r[2] for r in attempts},
        "event_processing_s": {
            "events": len(lags),
            "p50": round(_percentile(lags, 0.5), 2),
            "p99": round(_percentile(lags, 0.99), 2),
        },
    }


async def _fresh_day_budget() -> None:
    """Forget the calls the set-up spent from the shared day window (the limiter's Redis log)."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.delete("whoopsync:ratelimit:day")
    finally:
        await client.aclose()


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def _per_user_day(calls: float, users: int) -> float:
    return round(calls / users, 2)


def _profile_rows(profile: str, webhooks: DayOutcome, threshold: DayOutcome | None) -> list[Row]:
    users = webhooks.run.users
    ideal = ideal_calls(webhooks.announced, webhooks.reads)
    guide = guide_calls(webhooks.reads)
    per_user = _per_user_day(webhooks.calls, users)
    p99 = _percentile(webhooks.lags, 0.99)
    stale = webhooks.sources.get("stale_cache", 0)
    label = f"economy [{profile}, {users} users]"
    rows = [
        at_most(f"{label}: webhooks vs ideal", webhooks.calls, ideal, "calls", 1.2),
        at_most(f"{label}: webhooks vs guide", webhooks.calls, guide, "calls", 0.2),
    ]
    if threshold is not None:
        rows += [
            info(f"{label}: threshold vs ideal", threshold.calls, ideal, "calls"),
            info(f"{label}: threshold vs guide", threshold.calls, guide, "calls"),
        ]
    rows += [
        info(f"{label}: webhooks, calls per user-day", per_user, None, "calls"),
        info(
            f"{label}: users 10,000 calls a day carry (webhooks)",
            math.floor(BUDGET_PER_DAY / per_user) if per_user else float("inf"),
            None,
            "users",
        ),
        at_most(f"{label}: freshness p99 (webhooks)", p99, 60.0, "s", 1.0),
        at_most(f"{label}: stale_cache reads (webhooks)", stale, 1, "reads", 0.0),
    ]
    for day in [d for d in (webhooks, threshold) if d is not None]:
        fault = behind(day)
        if fault is not None:  # the machine fell behind the day: no verdict on the design
            note = f"NOT VALID ({day.run.freshness} day): {fault}"
            rows = [dataclasses.replace(r, met=None, note=note) for r in rows]
    return rows


# A worker on its own processes an event in about 0.1 s; events waiting longer than this on the
# fast clock mean the shared machine fell behind the compressed day, and users held back by their
# unprocessed events (SPEC §4.1) refreshed on reads that a real day would have served from cache.
BEHIND_SECONDS = 5.0


def behind(day: DayOutcome) -> str | None:
    """Why a day's count is no measurement of the design (the machine fell behind), or None."""
    faults = []
    unanswered = day.statuses.get("0", 0)
    if unanswered:
        faults.append(f"{unanswered} of {len(day.reads)} reads unanswered")
    if day.unresolved:
        faults.append(f"{day.unresolved} sampled changes never seen in the cache")
    waited = day.why.get("event_processing_s", {}).get("p99", 0.0)
    if waited > BEHIND_SECONDS:
        faults.append(f"events waited {waited:g} s (p99) for the worker")
    return "; ".join(faults) or None


def _table(days: dict[str, tuple[DayOutcome, DayOutcome | None]]) -> list[dict[str, Any]]:
    """Calls per user-day by design and profile, for the JSON, the README and the chart."""
    rows = []
    for profile, (webhooks, threshold) in days.items():
        users = webhooks.run.users
        ideal = ideal_calls(webhooks.announced, webhooks.reads)
        guide = guide_calls(webhooks.reads)
        designs: dict[str, tuple[int, str, DayOutcome | None]] = {
            "whoop-sync webhooks": (webhooks.calls, "measured", webhooks)
        }
        if threshold is not None:
            designs["whoop-sync threshold"] = (threshold.calls, "measured", threshold)
        designs |= {
            "guide (fetch on read past threshold)": (guide, "computed", None),
            "hourly polling, 30 days": (polling_calls(users), "computed", None),
            "ideal": (ideal, "computed", None),
        }
        for design, (calls, how, day) in designs.items():
            per_user = calls / users
            rows.append(
                {
                    "profile": profile,
                    "users": users,
                    "design": design,
                    "how": how,
                    "calls": calls,
                    "calls_per_user_day": round(per_user, 2),
                    "ratio_to_ideal": round(calls / ideal, 2),
                    "ratio_to_guide": round(calls / guide, 2),
                    "users_10k_calls_carry": math.floor(BUDGET_PER_DAY / per_user),
                    "freshness_p50_s": None
                    if day is None
                    else round(_percentile(day.lags, 0.5), 2),
                    "freshness_p99_s": None
                    if day is None
                    else round(_percentile(day.lags, 0.99), 2),
                    "stale_cache_reads": None if day is None else day.sources.get("stale_cache", 0),
                }
            )
    return rows


def write_chart(table: list[dict[str, Any]], path: Path) -> Path:
    """A PNG of calls per user-day by design, one group of bars per read profile (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profiles = list(dict.fromkeys(r["profile"] for r in table))
    designs = list(dict.fromkeys(r["design"] for r in table))
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.8 / len(profiles)
    for i, profile in enumerate(profiles):
        values = [
            next(
                r["calls_per_user_day"]
                for r in table
                if r["profile"] == profile and r["design"] == d
            )
            for d in designs
        ]
        users = next(r["users"] for r in table if r["profile"] == profile)
        xs = [x + i * width for x in range(len(designs))]
        bars = ax.bar(xs, values, width, label=f"{profile} ({users} users)")
        ax.bar_label(bars, labels=[f"{v:g}" for v in values], fontsize=7)
    ax.set_xticks([x + width * (len(profiles) - 1) / 2 for x in range(len(designs))], designs)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("WHOOP calls per user-day (log scale)")
    ax.set_title("WHOOP calls per user-day by design: one simulated day", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _said(day: DayOutcome) -> DayOutcome:
    """Print one day's count as soon as it is known (a full run takes half an hour)."""
    print(
        f"   economy {day.run.freshness}/{day.run.profile} ({day.run.users} users): "
        f"{day.calls} calls, {day.announced} versions announced, set-up "
        f"{day.set_up_seconds:.0f} s, day {day.seconds:.0f} s; {day.by_endpoint}; "
        f"reads {day.sources}; {day.why}",
        flush=True,
    )
    return day


async def run(opts: Options) -> ScenarioResult:
    """Four live days (webhooks and threshold, under each read profile), the rest computed."""
    result = ScenarioResult(4, "Upstream economy")
    # WHOOPSYNC_BENCH_ECONOMY_DAY_SECONDS sets the simulated day's length in real seconds (a
    # machine that carries more can run faster); ..._PROFILES=heavy runs one profile only;
    # ..._MODES=webhooks leaves the threshold days out (half the run's time).
    forced = float(os.environ.get("WHOOPSYNC_BENCH_ECONOMY_DAY_SECONDS", "0"))
    sizes = {
        "app_opens": (opts.economy_users, forced or opts.economy_day_seconds),
        "heavy": (opts.economy_heavy_users, forced or opts.economy_heavy_day_seconds),
    }
    wanted = os.environ.get("WHOOPSYNC_BENCH_ECONOMY_PROFILES", ",".join(sizes)).split(",")
    sizes = {profile: size for profile, size in sizes.items() if profile in wanted}
    modes = os.environ.get("WHOOPSYNC_BENCH_ECONOMY_MODES", "webhooks,threshold").split(",")
    days: dict[str, tuple[DayOutcome, DayOutcome | None]] = {}
    for profile, (users, day_seconds) in sizes.items():
        webhooks = _said(await _day(Run("webhooks", profile, users, day_seconds)))
        threshold = None
        if "threshold" in modes:
            threshold = _said(await _day(Run("threshold", profile, users, day_seconds)))
        days[profile] = (webhooks, threshold)
        result.rows += _profile_rows(profile, webhooks, threshold)
    table = _table(days)
    chart = write_chart(table, RESULTS / "economy.png")
    result.details = {
        "clock": {profile: _clock(day_seconds) for profile, (_users, day_seconds) in sizes.items()},
        "table": table,
        "chart": chart.name,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "days": {
            f"{d.run.freshness}/{d.run.profile}": {
                "users": d.run.users,
                "calls": d.calls,
                "announced_versions": d.announced,
                "reads": len(d.reads),
                "read_sources": d.sources,
                "read_statuses": d.statuses,
                "calls_by_endpoint": d.by_endpoint,
                "freshness_samples": len(d.lags),
                "freshness_unresolved": d.unresolved,
                "seconds": round(d.seconds, 1),
                "set_up_seconds": round(d.set_up_seconds, 1),
                "where_calls_went": d.why,
                "not_valid": behind(d),
            }
            for pair in days.values()
            for d in pair
            if d is not None
        },
    }
    clocks = ", ".join(
        f"{profile} {users} users, a day in {day:g} s (clock factor {DAY / day:g})"
        for profile, (users, day) in sizes.items()
    )
    result.notes.append(
        f"one simulated day per run: {clocks}; thresholds, liveness, reconcile interval and inbox "
        "sweep divided by the factor; whoop-sync measured live (api, webhook, worker on "
        "PostgreSQL + Redis), its calls counted at the simulator; the guide's design, hourly "
        "polling and the ideal computed from the same change and read schedule; heavy: 80 reads "
        "a user-day; budgets unbounded (counting, not limiting): what 10,000 calls a day carry is "
        "computed from the count; the history's PENDING_SCORE records are scored before the "
        "members connect"
    )
    if opts.economy_users < 1000:
        result.notes.append(f"SCALED DOWN: {opts.economy_users} users (quick run)")
    # Its own file too: a run of this scenario alone keeps the full run's latest.json readable.
    (RESULTS / "economy.json").write_text(
        json.dumps(result.as_dict(), indent=2, default=str, allow_nan=True) + "\n"
    )
    return result
