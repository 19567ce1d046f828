"""WHOOP's side of the day: the history scored before the members connect, then the day's changes
on schedule (each announced by webhooks) and the open cycles growing every simulated hour."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import httpx

from bench.scenarios.economy.probes import TABLES, CycleFeedProbe, FreshnessProbe
from bench.sim import SimControl


async def score_history(ctl: SimControl, whoop_ids: list[int]) -> int:
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


def closed_cycle(outcome: dict[str, Any]) -> tuple[str, str] | None:
    """(the cycle a night's sleep closed, that sleep) from a new_sleep step's outcome: the first of
    its two cycles is the one it ends, the second the one it begins."""
    if outcome["action"] != "new_sleep":
        return None
    cycles = [c["id"] for c in outcome["changed"] if c["kind"] == "cycle"]
    sleeps = [e["id"] for e in outcome["events"] if e["type"] == "sleep.updated"]
    return (cycles[0], sleeps[0]) if len(cycles) == 2 and sleeps else None


async def drive_changes(
    ctl: SimControl,
    plan: list[tuple[float, int, str]],
    day_seconds: float,
    probe: FreshnessProbe,
    feed: CycleFeedProbe,
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
            closed = closed_cycle(outcome)
            if closed is not None:
                feed.add(*closed)

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
