"""`whoop-sync sim` starts, answers over real HTTP, and stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from services.simulator.server import free_port

ROOT = Path(__file__).resolve().parents[3]


async def _wait_healthy(http: httpx.AsyncClient, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(20):
        while True:
            try:
                if (await http.get("/_sim/health")).status_code == 200:
                    return
            except httpx.TransportError:
                assert process.returncode is None, "whoop-sync sim exited early"
                await asyncio.sleep(0.1)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGINT, as Ctrl-C would; kill only if it does not exit in time."""
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
    try:
        async with asyncio.timeout(10):
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.slow
async def test_sim_command_serves_whoops_paths() -> None:
    port = free_port()
    env = {
        **os.environ,
        "WHOOPSYNC_WHOOP_CLIENT_ID": "cli-client",
        "WHOOPSYNC_WHOOP_CLIENT_SECRET": "s",
    }
    args = ["sim", "--port", str(port), "--users", "3", "--days", "5"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await _wait_healthy(http, process)
            assert len((await http.get("/_sim/users")).json()["users"]) == 3
            assert (await http.get("/developer/v2/cycle")).status_code == 401
            authorize = await http.get(
                "/oauth/oauth2/auth",
                params={
                    "client_id": "cli-client",
                    "redirect_uri": "http://x/cb",
                    "response_type": "code",
                },
            )
            assert authorize.status_code == 302
            assert "code=" in authorize.headers["location"]
    finally:
        await _stop(process)
    assert process.returncode == 0
