"""A private PgBouncer in transaction mode, in front of a PostgreSQL server, for the pooler tests.

Debian's `pgbouncer` binary runs as a child on a free port with its configuration, socket and log in
a temporary directory; a system PgBouncer, if any, is never touched. Few server connections on
purpose: many client connections share them, so a statement that relied on staying on one server
connection fails here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.services import _as_postgres, _port_open, free_port, wait_for

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@dataclass
class PgBouncer:
    """`pgbouncer` on a free port in front of `target_port`; `stop()` ends it."""

    target_port: int
    pool_size: int = 4
    port: int = field(default_factory=free_port)
    directory: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="whoopsync-pgbouncer-"))
    )
    process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        """SQLAlchemy URL of `database` through the bouncer."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """asyncpg DSN of `database` through the bouncer."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _write_config(self) -> Path:
        (self.directory / "users.txt").write_text('"postgres" ""\n')
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host=127.0.0.1 port={self.target_port}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    f"unix_socket_dir = {self.directory}",
                    "auth_type = trust",
                    f"auth_file = {self.directory / 'users.txt'}",
                    "pool_mode = transaction",
                    f"default_pool_size = {self.pool_size}",
                    "max_client_conn = 1000",
                    # A server that is away fails a waiting client within seconds (the processes
                    # answer 503) and is tried again every second once it is back. Shorter than the
                    # restart drill's 4 s outage, so that the outage is seen and not waited out.
                    "query_wait_timeout = 3",
                    "server_login_retry = 1",
                    "server_connect_timeout = 2",
                    f"logfile = {self.directory / 'pgbouncer.log'}",
                    f"pidfile = {self.directory / 'pgbouncer.pid'}",
                    "",
                ]
            )
        )
        return config

    async def start(self) -> None:
        """Start it and wait until it listens."""
        os.chmod(self.directory, 0o777)  # noqa: S103 - as root it runs as the postgres OS user
        config = self._write_config()
        for path in self.directory.iterdir():
            os.chmod(path, 0o666)  # noqa: S103 - read by the postgres OS user
        self.process = subprocess.Popen(  # noqa: ASYNC220 - starting a child is instant
            _as_postgres([PGBOUNCER, str(config)]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        await wait_for(lambda: _port_open(self.port), 15, "PgBouncer listening")

    def log_tail(self, lines: int = 30) -> str:
        """The end of its log, for failure messages."""
        path = self.directory / "pgbouncer.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop it (SIGINT: at once) and delete its directory."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            self.process.wait(15)
        self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)
