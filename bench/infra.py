"""Orchestration: free ports, product and baseline processes with peak-RSS sampling,
a PostgreSQL database per run, Redis index 7."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PG_ADMIN_DSN = os.environ.get(
    "WHOOPSYNC_BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("WHOOPSYNC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
LOG_DIR = Path(tempfile.gettempdir()) / "whoopsync-bench-logs"

CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-webhook-secret"
JWT_SECRET = "bench-jwt-secret-with-enough-bytes-for-hs256"
# A fixed Fernet key: the bench's databases are throwaway.
TOKEN_KEY = "bXV0dWFsbHktYXNzdXJlZC1iZW5jaC1rZXktMzJieXQ="


def free_port() -> int:
    """A TCP port nobody uses right now, below the ephemeral range (32768 and up on Linux), so
    that no outgoing connection of a busy machine takes it before the server binds it."""
    for _ in range(200):
        port = random.randint(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RssSampler:
    """Samples a process tree's resident memory in a thread and keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> int:
        """Current RSS of the process and its children, bytes (0 once gone)."""
        try:
            proc = psutil.Process(self.pid)
            procs = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self.interval)

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=2)


@dataclass
class Proc:
    """One process the bench started: its command, log, and peak RSS."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    sampler: RssSampler
    port: int | None = None

    @property
    def url(self) -> str:
        """Base URL of the process's HTTP server."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def peak_rss_mb(self) -> float:
        """Peak resident memory seen so far, MiB."""
        return round(self.sampler.peak / 2**20, 1)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the process and its children have used so far."""
        try:
            proc = psutil.Process(self.popen.pid)
            procs = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0.0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                times = p.cpu_times()
                total += times.user + times.system
        return total

    def log_tail(self, lines: int = 30) -> str:
        """The end of the process's output, for error messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the process group, SIGKILL after `timeout`; returns the exit code."""
        self.sampler.peak = max(self.sampler.peak, self.sampler.sample())
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self.sampler.stop()
        return self.popen.returncode


@dataclass
class Cluster:
    """Every process a measurement started, stopped together (even on failure)."""

    procs: list[Proc] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        port: int | None = None,
    ) -> Proc:
        """Start `argv` in its own session with the given environment, logging to a file."""
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_path = LOG_DIR / f"{name}-{uuid.uuid4().hex[:6]}.log"
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Proc(name, popen, log_path, RssSampler(popen.pid), port)
        self.procs.append(proc)
        return proc

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds so far of each running process started here (by name), of the machine's
        PostgreSQL and Redis servers, and of this process (`bench`)."""
        seconds = {p.name: p.cpu_seconds() for p in self.procs if p.popen.poll() is None}
        for name, group in (("postgres", "postgresql"), ("redis-server", "redis")):
            total = 0.0
            for server in psutil.process_iter(["name", "cpu_times"]):
                if server.info["name"] == name and server.info["cpu_times"] is not None:
                    total += server.info["cpu_times"].user + server.info["cpu_times"].system
            seconds[group] = total
        own = psutil.Process().cpu_times()
        seconds["bench"] = own.user + own.system
        return seconds

    def whoop_sync(
        self,
        name: str,
        command: str,
        env: Mapping[str, str],
        http: bool = True,
        extra_argv: list[str] | None = None,
        port: int | None = None,
    ) -> Proc:
        """Start a `whoop-sync <command>` process; HTTP ones get a free port unless given one."""
        port = (port or free_port()) if http else None
        argv = [str(VENV_BIN / "whoop-sync"), command]
        if http:
            argv += ["--host", "127.0.0.1", "--port", str(port)]
        return self.start(name, argv + (extra_argv or []), env, port)

    def uvicorn(self, name: str, app: str, env: Mapping[str, str]) -> Proc:
        """Start a bench baseline app under uvicorn, one worker, like the product's servers."""
        port = free_port()
        argv = [
            sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        return self.start(name, argv, env, port)

    def stop_all(self) -> dict[str, float]:
        """Stop every process, newest first; peak RSS per process name, MiB."""
        for proc in reversed(self.procs):
            proc.stop()
        return {p.name: p.peak_rss_mb for p in self.procs}


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """A Cluster whose processes are stopped on the way out, whatever happened."""
    group = Cluster()
    try:
        yield group
    finally:
        group.stop_all()


async def wait_http(proc: Proc, path: str = "/healthz", limit: float = 120.0) -> None:
    """Wait until the process answers 2xx on `path` (or die trying, with its log)."""
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(
                    f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(proc.url + path)).is_success:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not answer {path} within {limit:.0f}s:\n{proc.log_tail()}")


async def wait_alive(proc: Proc, seconds: float) -> None:
    """For processes without HTTP: wait a moment and make sure they still run."""
    await asyncio.sleep(seconds)
    if proc.popen.poll() is not None:
        raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_tail()}")


async def start_pipeline(
    procs: Cluster, env: Mapping[str, str], *, api_port: int, hook_port: int | None = None
) -> tuple[Proc, Proc, Proc]:
    """Start the product's api, webhook and worker processes; wait until each is up."""
    api = procs.whoop_sync("whoop-sync api", "api", env, port=api_port)
    hook = procs.whoop_sync("whoop-sync webhook", "webhook", env, port=hook_port)
    worker = procs.whoop_sync("whoop-sync worker", "worker", env, http=False)
    await wait_http(api)
    await wait_http(hook)
    await wait_alive(worker, 1.0)
    return api, hook, worker


def asyncpg_url(database: str) -> str:
    """SQLAlchemy URL of a database on the bench's PostgreSQL server."""
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


def plain_dsn(database: str) -> str:
    """asyncpg DSN of a database on the bench's PostgreSQL server."""
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"


async def pg_connect(dsn: str, attempts: int = 30) -> asyncpg.Connection:
    """An asyncpg connection, waited for while the shared server is out of connections (other
    measurements or test runs on the same machine hold them for a while)."""
    for attempt in range(attempts):
        try:
            return await asyncpg.connect(dsn)
        except asyncpg.exceptions.TooManyConnectionsError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(2.0)
    raise AssertionError("unreachable")


@contextlib.asynccontextmanager
async def bench_database(label: str) -> AsyncIterator[str]:
    """A fresh `whoopsync_bench_*` database migrated to head; dropped afterwards. Yields its name."""
    from common.db.migrate import upgrade_async

    name = f"whoopsync_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = await pg_connect(PG_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        await upgrade_async(asyncpg_url(name))
        yield name
    finally:
        admin = await pg_connect(PG_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def flush_redis() -> None:
    """Empty the bench's Redis database (index 7)."""
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def product_env(database: str, **extra: str | int | float) -> dict[str, str]:
    """WHOOPSYNC_* environment of the product processes in one measurement."""
    env = {
        "WHOOPSYNC_DATABASE_URL": asyncpg_url(database),
        "WHOOPSYNC_REDIS_URL": REDIS_URL,
        "WHOOPSYNC_WHOOP_CLIENT_ID": CLIENT_ID,
        "WHOOPSYNC_WHOOP_CLIENT_SECRET": CLIENT_SECRET,
        "WHOOPSYNC_JWT_SECRET": JWT_SECRET,
        "WHOOPSYNC_TOKEN_ENCRYPTION_KEY": TOKEN_KEY,
        "WHOOPSYNC_LOG_FORMAT": "json",
        # Overridden where the connect flow runs; the api refuses to start without one.
        "WHOOPSYNC_WHOOP_REDIRECT_URI": "http://127.0.0.1:9/api/v1/whoop/callback",
    }
    env.update({f"WHOOPSYNC_{k.upper()}": str(v) for k, v in extra.items()})
    return env
