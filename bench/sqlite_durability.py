"""What SQLite's synchronous=FULL costs the webhook's inbox write, next to NORMAL.

.venv/bin/python -m bench.sqlite_durability [--events 2000]

Records events one by one through the webhook's own path (`record_event`, one committed INSERT
each) on a fresh file per mode, and prints the mean and p99 of a write and events per second.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import event

from common.db.engine import create_engine
from common.db.migrate import upgrade_async
from common.sync.inbox import record_event


async def _measure(url: str, synchronous: str, events: int) -> tuple[float, float, float]:
    await upgrade_async(url)
    engine = create_engine(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _mode(dbapi_conn: object, _record: object) -> None:
        dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")  # type: ignore[attr-defined]

    timings = []
    try:
        for n in range(events):
            began = time.perf_counter()
            await record_event(
                engine,
                trace_id=uuid.uuid4().hex,
                event_type="sleep.updated",
                whoop_user_id=10129,
                record_id=str(uuid.uuid4()),
                payload="{}",
                will_enqueue=False,
            )
            timings.append(time.perf_counter() - began)
            del n
    finally:
        await engine.dispose()
    timings.sort()
    mean = statistics.fmean(timings)
    return mean * 1000, timings[int(len(timings) * 0.99)] * 1000, 1 / mean


async def main(events: int) -> None:
    """Both modes, one after the other, each on its own file."""
    # In the working directory: /tmp is often a tmpfs, where an fsync costs nothing.
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        for mode in ("NORMAL", "FULL"):
            url = f"sqlite+aiosqlite:///{Path(tmp) / f'{mode}.db'}"
            mean, p99, rate = await _measure(url, mode, events)
            print(f"synchronous={mode:<6}  mean {mean:6.3f} ms  p99 {p99:6.3f} ms  {rate:7.0f}/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    asyncio.run(main(parser.parse_args().events))
