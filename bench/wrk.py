"""Load from a separate process: `wrk` for closed-loop throughput and latency."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"


def ensure_wrk() -> str | None:
    """Path of `wrk`; installed with apt-get when missing and running as root."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "install", "-y", "-qq", "wrk"], ["apt-get", "update", "-qq"]):
        subprocess.run(argv, env=env, capture_output=True, check=False)
        if shutil.which("wrk"):
            break
    if not shutil.which("wrk"):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True, check=False
        )
    return shutil.which("wrk")


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: completed requests, non-2xx/3xx answers, latency percentiles (ms)."""

    requests: int
    seconds: float
    status_errors: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def ok(self) -> int:
        """Requests answered 2xx/3xx."""
        return self.requests - self.status_errors

    @property
    def ok_per_second(self) -> float:
        """Successful requests per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready form."""
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "ok_per_second": round(self.ok_per_second, 1),
            "status_errors": self.status_errors,
            "socket_errors": self.socket_errors,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
        }


async def run_wrk(
    url: str,
    script: str,
    seconds: float,
    connections: int,
    env: dict[str, str] | None = None,
    threads: int = 1,
) -> WrkResult:
    """Run wrk against `url` for `seconds` with one of bench/lua's scripts."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "summary.json"
        full_env = {
            **os.environ,
            **(env or {}),
            "BENCH_OUT": str(out),
            "BENCH_LUA_DIR": str(LUA_DIR),
        }
        argv = [
            wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "-s", str(LUA_DIR / script), url,
        ]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        output, _ = await proc.communicate()
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed ({proc.returncode}): {output.decode(errors='replace')}")
        data = json.loads(out.read_text())
    errors = data["errors"]
    lat = data["latency_us"]
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        status_errors=int(errors["status"]),
        socket_errors=int(errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]),
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000,
    )
