"""`whoop-sync worker` as a real process: it runs jobs, keeps arq's health key fresh so that
`whoop-sync worker --check` (compose's health check) passes, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from common.config import Settings
from common.queue import arq_redis
from services.simulator.server import free_port
from services.worker.health import HEALTH_CHECK_KEY
from tests.common.sync.harness import make_settings

CLI = str(Path(sys.executable).with_name("whoop-sync"))
DEADLINE = 15.0


def cli_env(settings: Settings) -> dict[str, str]:
    """The inherited environment without WHOOPSYNC_* variables, plus these settings as variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHOOPSYNC_")}
    for name, value in settings.model_dump(exclude_none=True).items():
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"WHOOPSYNC_{name.upper()}"] = str(raw)
    return env


async def run_cli(env: dict[str, str], *args: str, cwd: Path) -> tuple[int, str, str]:
    """Run `whoop-sync ARGS` to the end: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        CLI, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(DEADLINE):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def wait_for(
    condition: Callable[[], Awaitable[bool]], process: asyncio.subprocess.Process
) -> None:
    """Poll `condition` until it holds; fail at once if the process died."""
    async with asyncio.timeout(DEADLINE):
        while not await condition():
            assert process.returncode is None, f"exited early with {process.returncode}"
            await asyncio.sleep(0.1)


async def stop(process: asyncio.subprocess.Process) -> int:
    """SIGTERM, as compose and systemd stop a service; kill only past the deadline."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(DEADLINE):
            return await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
def env(pg_url: str, redis_url: str) -> dict[str, str]:
    """A worker's settings: the run's PostgreSQL, the test Redis index, WHOOP nowhere (unused)."""
    return cli_env(make_settings(pg_url, redis_url, f"http://127.0.0.1:{free_port()}"))


@pytest.fixture
async def worker(
    env: dict[str, str], redis: aioredis.Redis, tmp_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`whoop-sync worker` running, its health key written; stopped (if still up) afterwards."""
    log = (tmp_path / "worker.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        CLI, "worker", env=env, cwd=tmp_path, stdout=log, stderr=log
    )
    try:
        await wait_for(lambda: redis.exists(HEALTH_CHECK_KEY), process)
        yield process
    finally:
        await stop(process)
        log.close()


@pytest.mark.slow
async def test_check_passes_while_a_worker_runs(
    worker: asyncio.subprocess.Process, env: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = await run_cli(env, "worker", "--check", cwd=tmp_path)
    assert code == 0, out + err
    assert out.strip().startswith("worker healthy")
    assert len(out.splitlines()) == 1
    assert err == ""
    arq_check = await asyncio.create_subprocess_exec(
        str(Path(CLI).with_name("arq")),
        "services.worker.settings.WorkerSettings",
        "--check",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    async with asyncio.timeout(DEADLINE):
        assert await arq_check.wait() == 0  # arq's own CLI finds the same Redis


@pytest.mark.slow
async def test_a_running_worker_runs_jobs_and_stops_cleanly_on_sigterm(
    worker: asyncio.subprocess.Process,
    env: dict[str, str],
    redis: aioredis.Redis,
    redis_url: str,
    tmp_path: Path,
) -> None:
    pool = arq_redis(redis_url)
    try:
        # An event id that was never recorded: the job reads the inbox (PostgreSQL) and skips it.
        job = await pool.enqueue_job("process_webhook_event", 987_654_321)
        assert job is not None
        assert await job.result(timeout=DEADLINE, poll_delay=0.1) == "skipped"
    finally:
        await pool.aclose()
    assert await stop(worker) == 0
    assert not await redis.exists(HEALTH_CHECK_KEY)  # a clean stop takes its health key along
    code, out, _ = await run_cli(env, "worker", "--check", cwd=tmp_path)
    assert (code, out.strip().split(":")[0]) == (1, "worker unhealthy")


@pytest.mark.slow
async def test_check_fails_without_a_worker(
    env: dict[str, str], redis: aioredis.Redis, tmp_path: Path
) -> None:
    code, out, err = await run_cli(env, "worker", "--check", cwd=tmp_path)
    assert code == 1
    assert out.strip() == (
        f"worker unhealthy: no {HEALTH_CHECK_KEY} key in Redis "
        "(a running worker writes it every 10 s)"
    )
    assert err == ""


@pytest.mark.slow
async def test_check_fails_fast_when_redis_is_down(env: dict[str, str], tmp_path: Path) -> None:
    down = env | {"WHOOPSYNC_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    started = asyncio.get_running_loop().time()
    code, out, _ = await run_cli(down, "worker", "--check", cwd=tmp_path)
    assert (code, out.strip()) == (1, "worker unhealthy: Redis unreachable (ConnectionError)")
    assert asyncio.get_running_loop().time() - started < 10  # no retry loop of arq's in a check


@pytest.mark.slow
async def test_worker_refuses_to_start_without_redis(env: dict[str, str], tmp_path: Path) -> None:
    without = {k: v for k, v in env.items() if k != "WHOOPSYNC_REDIS_URL"}
    code, out, err = await run_cli(without, "worker", cwd=tmp_path)
    assert code == 2
    assert out == ""
    assert err.strip() == "whoop-sync: WHOOPSYNC_REDIS_URL is required but not set"
