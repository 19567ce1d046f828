"""Private PostgreSQL and Redis servers, and the product's processes, for fault tests and the soak.

Each server runs as a child on a free port in a temporary directory, so a test can stop and start
it without touching any shared instance. As root, PostgreSQL runs as the `postgres` OS user (it
refuses to run as root).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("whoop-sync"))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def wait_for(check: Callable[[], bool], limit: float, what: str) -> None:
    """Poll `check` every 50 ms until it holds; RuntimeError after `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{what} not within {limit:.0f}s")


@dataclass
class PrivatePostgres:
    """`initdb` + `postgres` on a free port; `stop()` and `start()` keep the data directory."""

    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="whoopsync-pg-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        """asyncpg DSN of the `postgres` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `postgres` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        """Create the cluster (trust authentication, no fsync: it is thrown away)."""
        os.chmod(self.directory, 0o777)  # noqa: S103 - the postgres OS user writes here
        data = self.directory / "data"
        subprocess.run(
            _as_postgres(["initdb", "-D", str(data), "-U", "postgres", "-A", "trust"]),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        argv = ["postgres", "-D", str(self.directory / "data"), "-p", str(self.port)]
        argv += ["-k", str(self.directory), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        with (self.directory / "server.log").open("ab") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - starting a child is instant
                _as_postgres(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        await wait_for(self._ready, 30, "PostgreSQL accepting connections")

    def _ready(self) -> bool:
        done = subprocess.run(
            ["pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
        )
        return done.returncode == 0

    def stop(self) -> None:
        """Fast shutdown (what a restart or a failover looks like to clients)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            self.process.wait(30)
        self.process = None

    def remove(self) -> None:
        """Stop and delete the data directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class PrivateRedis:
    """`redis-server` on a free port, without persistence: a restart loses what it held."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start the server and wait until it listens."""
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(  # noqa: ASYNC220 - starting a child is instant
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        await wait_for(lambda: _port_open(self.port), 15, "Redis listening")

    def stop(self) -> None:
        """Stop the server (SIGTERM)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        self.process = None


@dataclass
class Process:
    """One `whoop-sync` process started for a test."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None

    @property
    def url(self) -> str:
        """Base URL of its HTTP server."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        """True while it runs."""
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The end of its output, for failure messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def kill(self) -> None:
        """SIGKILL, as an OOM killer or a lost machine would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Processes:
    """The `whoop-sync` processes of one test, all stopped at the end."""

    log_dir: Path
    started: list[Process] = field(default_factory=list)

    def start(
        self,
        command: str,
        env: Mapping[str, str],
        *args: str,
        http: bool = True,
        port: int | None = None,
    ) -> Process:
        """`whoop-sync <command>`; HTTP ones listen on `port` or a free one."""
        port = (port or free_port()) if http else None
        argv = [CLI, command, *args]
        if port is not None:
            argv += ["--host", "127.0.0.1", "--port", str(port)]
        log_path = self.log_dir / f"{command}-{len(self.started)}.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("WHOOPSYNC_")}
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=clean | dict(env) | {"PYTHONUNBUFFERED": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        process = Process(command, popen, log_path, port)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        """Stop every process, newest first."""
        for process in reversed(self.started):
            process.stop()


async def wait_http(process: Process, path: str = "/healthz", limit: float = 60.0) -> None:
    """Wait until the process answers 2xx on `path`."""
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not process.alive:
                raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(process.url + path)).is_success:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{process.name} did not answer {path}:\n{process.log_tail()}")
