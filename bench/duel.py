"""Two builds of the worker side by side on one backlog: the working tree's and a git revision's.

.venv/bin/python -m bench.duel --base REV [--events 1500] [--rounds 3]

A change to the event path is worth a few per cent of the worker's CPU, and this machine's speed
drifts by more than that from one run to the next, so a figure before and a figure after, taken
minutes apart, cannot tell them apart. Here both workers run at the same time against the same
PostgreSQL, Redis and simulator, taking jobs from the same queue, so whatever the machine does
falls on both alike. The base build runs from a temporary `git worktree` of REV (its code first on
PYTHONPATH); the other from this checkout. Both start before the first round and are left to
settle; each round queues `--events` new sleeps' `sleep.updated` through the webhook receiver at
1,000 a second, and counts, per worker, the CPU it spent until every record was readable and the
events it processed (its `event.processed` log lines). Reported: CPU per event of each, and the
working tree's against the base's (below 1: cheaper).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.backlog import PRODUCT_SQL, SEND_RATE, poll_visible
from bench.connect import connected_pipeline
from bench.infra import (
    CLIENT_SECRET,
    ROOT,
    Proc,
    bench_database,
    cluster,
    flush_redis,
    plain_dsn,
)
from bench.openloop import Planned, run_open_loop
from bench.webhooks import signed

USERS = 20
SETTLE_S = 6.0  # start-up (imports, pools) left out of the first round


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A detached worktree of `rev`, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="whoopsync-duel-")) / "base"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-q", str(path), rev], cwd=ROOT, check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


def processed(worker: Proc) -> int:
    """Events the worker has processed so far (its log lines)."""
    with worker.log_path.open(errors="replace") as log:
        return sum(1 for line in log if "event.processed" in line)


async def duel(base: Path, events: int, rounds: int) -> dict[str, list[tuple[float, int]]]:
    """Per build, (CPU seconds, events processed) of each round."""
    figures: dict[str, list[tuple[float, int]]] = {"base": [], "tree": []}
    async with bench_database("duel") as db:
        await flush_redis()
        with cluster() as procs:
            up = await connected_pipeline(procs, db, USERS)
            env, hook, first, ctl, whoop_ids = up.env, up.hook, up.worker, up.ctl, up.whoop_ids
            try:
                first.stop()
                base_env = env | {"PYTHONPATH": os.pathsep.join([str(base), str(ROOT)])}
                workers = {
                    "base": procs.whoop_sync("worker base", "worker", base_env, http=False),
                    "tree": procs.whoop_sync("worker tree", "worker", env, http=False),
                }
                await asyncio.sleep(SETTLE_S)
                done = {name: processed(w) for name, w in workers.items()}
                for _ in range(rounds):
                    records = await asyncio.gather(
                        *(ctl.create(whoop_ids[i % USERS], "sleep") for i in range(events))
                    )
                    plan: list[Planned] = []
                    for n, record in enumerate(records):
                        hook_ = signed(
                            CLIENT_SECRET, int(record["user_id"]), record["id"], "sleep.updated"
                        )
                        body = hook_.body.decode()
                        plan.append(
                            (n / SEND_RATE, "POST", "/webhooks/whoop", hook_.headers(), body)
                        )
                    cpu = {name: w.cpu_seconds() for name, w in workers.items()}
                    ids = [uuid.UUID(r["id"]) for r in records]
                    poller = asyncio.create_task(
                        poll_visible(plain_dsn(db), PRODUCT_SQL, ids, time.time() + 300)
                    )
                    await run_open_loop(hook.url, plan, connections=32)
                    seen = await poller
                    if len(seen) < len(ids):
                        raise RuntimeError(f"{len(ids) - len(seen)} records not readable")
                    await asyncio.sleep(1.0)  # the last closes logged
                    for name, w in workers.items():
                        now = processed(w)
                        figures[name].append((w.cpu_seconds() - cpu[name], now - done[name]))
                        done[name] = now
            finally:
                await ctl.aclose()
    await flush_redis()
    return figures


def per_event(rounds: list[tuple[float, int]]) -> float:
    """CPU milliseconds per event over all rounds."""
    return 1000 * sum(c for c, _ in rounds) / max(1, sum(n for _, n in rounds))


def main() -> None:
    """Run the duel and print each round and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with worktree(args.base) as base:
        figures = asyncio.run(duel(base, args.events, args.rounds))
    for n, (b, t) in enumerate(zip(figures["base"], figures["tree"], strict=True)):
        print(
            f"round {n + 1}: base {b[1]} events, {1000 * b[0] / max(1, b[1]):.2f} ms each; "
            f"tree {t[1]} events, {1000 * t[0] / max(1, t[1]):.2f} ms each"
        )
    base_ms, tree_ms = per_event(figures["base"]), per_event(figures["tree"])
    print(
        f"worker CPU per event: base ({args.base}) {base_ms:.2f} ms, working tree {tree_ms:.2f} ms,"
        f" ratio {tree_ms / base_ms:.3f}"
    )


if __name__ == "__main__":
    main()
