"""4. Upstream economy: one simulated day of whoop-sync under WHOOP's default budget, enforced,
for four profiles; WHOOP calls of whoop-sync, of the guide's design, of hourly polling and of the
ideal.

The day: each member's night (a sleep created pending, then scored, its recovery likewise), about 1.2
workouts (some scored later), and the open cycle growing every simulated hour (strain, kilojoules;
WHOOP sends no cycle webhooks). Profiles: *app opens* (1,000 users; six opens in waking hours, each
reading recovery, sleep and cycle, plus two workout reads), *heavy* (250 users, 20 reads of every
type), *feed only* (1,000 users, no reads: the app's backend lives on pushes) and *overload* (1,500
users with app opens: more than the budget carries; the next day's first simulated hour is run
too, for the events left over).

The budget is WHOOP's default, 100 calls a simulated minute and 10,000 a simulated day counted from
the day's start: the simulator enforces it and counts its 429s, and whoop-sync is configured with
it on its own clock (`clock.py`). Set-up (the history's pending records scored, the members
connected through the OAuth flow, their backfills) runs on an unbounded budget and is not part of
the day; the product restarts under the day's budget before the day starts.

whoop-sync runs for real (api, webhook and worker processes on PostgreSQL and Redis) and its calls
are counted at the simulator, each put down to what it was for (`where.py`). A day the machine could
not keep up with (reads unanswered or sent late, or, while the budget was not short, changes never
seen or events waiting for the worker) is marked NOT VALID. The guide's design, hourly polling and
the ideal are computed from the same generated change and read schedule:
- guide: no webhooks; a read past its type's threshold since the type's last fetch costs one call;
- hourly polling over 30 days: every user, every type, every hour, one page per 25 records;
- ideal: one fetch per record version WHOOP announces, plus one cycle fetch per cycle read past its
  threshold since the last cycle fetch.
"""

from __future__ import annotations

import json
import os
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.options import Options
from bench.result import ScenarioResult
from bench.scenarios.economy import clock
from bench.scenarios.economy.chart import write_chart
from bench.scenarios.economy.day import DayOutcome, live_day
from bench.scenarios.economy.plan import Run
from bench.scenarios.economy.readme import markdown
from bench.scenarios.economy.table import behind, day_accounts, design_table, profile_rows

RESULTS = Path(__file__).resolve().parents[2] / "results"


def _per_profile(text: str, cast: type[float] | type[int]) -> dict[str, float]:
    """ "864" (every profile) or "app_opens=864,overload=1152" as {profile or "*": value}."""
    given: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        profile, _, value = part.rpartition("=")
        given[profile or "*"] = cast(value)
    return given


def runs(opts: Options) -> list[Run]:
    """The days to run. WHOOPSYNC_BENCH_ECONOMY_PROFILES picks profiles (comma-separated),
    ..._USERS and ..._DAY_SECONDS force sizes and day lengths ("864" for every profile, or
    "app_opens=864,overload=1152"), ..._MODES adds `threshold` days (the guide's rule alone)
    beside the `webhooks` ones."""
    env = os.environ.get
    wanted = env("WHOOPSYNC_BENCH_ECONOMY_PROFILES", "")
    users = _per_profile(env("WHOOPSYNC_BENCH_ECONOMY_USERS", ""), int)
    seconds = _per_profile(env("WHOOPSYNC_BENCH_ECONOMY_DAY_SECONDS", ""), float)
    modes = env("WHOOPSYNC_BENCH_ECONOMY_MODES", "webhooks").split(",")
    return [
        Run(
            mode,
            profile,
            int(users.get(profile, users.get("*", size))),
            seconds.get(profile, seconds.get("*", day)),
        )
        for profile, size, day in opts.economy
        if not wanted or profile in wanted.split(",")
        for mode in modes
    ]


def _said(day: DayOutcome) -> DayOutcome:
    """Print one day's figures as soon as they are known (a full run takes an hour)."""
    print(
        f"   economy {day.run.freshness}/{day.run.profile} ({day.run.users} users): "
        f"{day.calls} calls, {day.rate_limited} x 429, {day.announced} versions announced, "
        f"set-up {day.set_up_seconds:.0f} s, day {day.seconds:.0f} s; {day.kinds}; "
        f"reads {day.sources} {day.stale_reasons}; events {day.events}; next hour "
        f"{day.next_hour}; closed cycles in the feed {len(day.cycle_feed_s)} (max "
        f"{max(day.cycle_feed_s, default=0):.1f} s), {day.cycle_feed_missing} missing; {day.why}; "
        f"valid: {behind(day) or 'yes'}",
        flush=True,
    )
    return day


async def run(opts: Options) -> ScenarioResult:
    """The live days, the rest computed; economy.json, economy.png and the README's tables,
    written again after each day (a run cut short keeps the days it finished)."""
    plan = runs(opts)
    days: list[DayOutcome] = []
    failures: list[str] = []
    result = ScenarioResult(4, "Upstream economy")
    for day_run in plan:
        try:
            days.append(_said(await live_day(day_run)))
        except Exception as exc:  # one failed day must not cost the others (an hour's run)
            traceback.print_exc()
            failures.append(f"{day_run.profile}: NOT RUN ({str(exc)[:200]})")
        if days:
            result = _written(plan, days, failures)
    if not days:
        raise RuntimeError("; ".join(failures) or "no economy day ran")
    print(result.details["readme"], flush=True)
    return result


def _written(plan: list[Run], days: list[DayOutcome], failures: list[str]) -> ScenarioResult:
    """The result of the days so far, written to economy.json and economy.png."""
    result = ScenarioResult(4, "Upstream economy", notes=list(failures))
    for day in days:
        result.rows += profile_rows(day)
    table, accounts = design_table(days), [day_accounts(d) for d in days]
    chart = write_chart(table, accounts, RESULTS / "economy.png")
    result.details = {
        "clock": {f"{r.freshness}/{r.profile}": clock.details(r) for r in plan},
        "table": table,
        "accounts": accounts,
        "chart": chart.name,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "days": {f"{d.run.freshness}/{d.run.profile}": _day_details(d) for d in days},
        "readme": markdown(table, accounts),
    }
    clocks = ", ".join(
        f"{r.profile} {r.users} users, a day in {r.day_seconds:g} s (clock factor {r.factor:g})"
        for r in plan
    )
    result.notes.append(
        f"one simulated day per profile: {clocks}; WHOOP's budget (100 a simulated minute, 10,000 "
        "a simulated day from the day's start) enforced by the simulator and configured in "
        "whoop-sync; set-up unbounded and not counted; thresholds, liveness, reconcile interval "
        "and inbox sweep divided by the factor; the guide's design, hourly polling and the ideal "
        "computed from the same change and read schedule"
    )
    full = {profile: size for profile, size, _day in Options.make(False).economy}
    if any(r.users < full[r.profile] for r in plan):
        result.notes.append("SCALED DOWN: fewer users than the full run")
    # Its own file too: a run of this scenario alone keeps the full run's latest.json readable.
    (RESULTS / "economy.json").write_text(
        json.dumps(result.as_dict(), indent=2, default=str, allow_nan=True) + "\n"
    )
    return result


def _day_details(d: DayOutcome) -> dict[str, object]:
    return {
        "users": d.run.users,
        "calls": d.calls,
        "announced_versions": d.announced,
        "reads": len(d.reads),
        "read_sources": d.sources,
        "read_statuses": d.statuses,
        "read_errors": d.error_codes,
        "calls_by_endpoint": d.by_endpoint,
        "webhook_answers": d.webhook_answers,
        "freshness_samples": len(d.lags),
        "freshness_unresolved": d.unresolved,
        "reads_max_slip_s": d.slip_s,
        "seconds": round(d.seconds, 1),
        "set_up_seconds": round(d.set_up_seconds, 1),
        "where_calls_went": d.why,
        "not_valid": behind(d),
    }
