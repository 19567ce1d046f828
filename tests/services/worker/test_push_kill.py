"""Nothing is lost across a worker kill: a worker killed in the middle of a push leaves the
user's queue to the next worker (its lock dies with its connection), which sends everything, in
order, at least once."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from common.db.models import AppDelivery
from common.db.repositories import RecordRepository
from common.feed.cursor import decode
from common.queue import ArqQueue
from common.sync.context import build_context
from common.types import DataType
from services.simulator.server import free_port
from services.worker.health import HEALTH_CHECK_KEY
from tests.common.db import samples
from tests.common.feed.receiver import serve_receiver
from tests.common.sync.harness import make_settings
from tests.services.worker.test_command import CLI, cli_env, stop

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


async def _worker(env: dict[str, str], tmp_path: Path, name: str) -> asyncio.subprocess.Process:
    with (tmp_path / f"{name}.log").open("wb") as log:  # the child keeps its own descriptor
        return await asyncio.create_subprocess_exec(
            CLI, "worker", env=env, cwd=tmp_path, stdout=log, stderr=log
        )


async def wait_for(
    condition: Callable[[], Awaitable[object]], process: asyncio.subprocess.Process
) -> None:
    """Poll `condition` until it holds (a loaded machine starts a worker slowly)."""
    async with asyncio.timeout(90):
        while not await condition():
            assert process.returncode is None, f"exited early with {process.returncode}"
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_a_worker_killed_mid_push_loses_nothing(
    pg_url: str, redis_url: str, redis: aioredis.Redis, tmp_path: Path
) -> None:
    async with serve_receiver() as receiver:
        settings = make_settings(
            pg_url,
            redis_url,
            f"http://127.0.0.1:{free_port()}",
            app_webhook_url=receiver.url,
            app_webhook_secret=SECRET,
        )
        env = cli_env(settings)
        receiver.hold = asyncio.Event()
        first = await _worker(env, tmp_path, "first")
        second: asyncio.subprocess.Process | None = None
        sync = await build_context(settings)
        sync.feed.use_queue(ArqQueue(sync.redis))  # type: ignore[arg-type]
        user = uuid.uuid4()
        try:
            await wait_for(lambda: redis.exists(HEALTH_CHECK_KEY), first)
            objs = [samples.workout(start=T0 + timedelta(hours=i)) for i in range(4)]
            for obj in objs:
                async with sync.session_factory() as session:
                    await RecordRepository(session, DataType.WORKOUT).upsert(user, [obj])
                    await session.commit()

            async def held() -> bool:
                return receiver.incoming > 0

            await wait_for(held, first)
            first.send_signal(signal.SIGKILL)
            await first.wait()
            hold, receiver.hold = receiver.hold, None
            hold.set()
            second = await _worker(env, tmp_path, "second")

            async def all_delivered() -> bool:
                async with sync.session_factory() as session:
                    statuses = (
                        await session.scalars(
                            select(AppDelivery.status).where(AppDelivery.user_id == user)
                        )
                    ).all()
                return len(statuses) == 4 and set(statuses) == {"delivered"}

            async with asyncio.timeout(90):
                while not await all_delivered():
                    assert second.returncode is None
                    await asyncio.sleep(0.2)
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()
            if second is not None:
                await stop(second)
            await sync.close()
    bodies = [Webhook(SECRET).verify(p.body, p.headers) for p in receiver.pushes]
    firsts: dict[str, dict[str, object]] = {}
    for push, body in zip(receiver.pushes, bodies, strict=True):
        firsts.setdefault(push.headers["webhook-id"], body)
    unique = list(firsts.values())
    assert [b["record"] for b in unique] == objs
    cursors = [decode(str(b["cursor"])) for b in unique]
    assert cursors == sorted(cursors)
