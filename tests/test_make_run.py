"""`make run` itself: started with a deadline, reached over HTTP as the README says, its banner
(one `export TOKEN=…`, the docs and the console, printed again after the backfill), the push
receiver's summaries, and Ctrl-C (SIGINT to its process group, as a terminal sends it) leaving
nothing behind: no process, no traceback or colour code in the logs, the simulator's data kept."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from services.simulator.server import free_port

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 150


def _wait_for_token(proc: subprocess.Popen[str], lines: list[str]) -> str:
    assert proc.stdout is not None
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            text = "".join(lines)
            tokens: list[str] = re.findall(r"^  export TOKEN=(\S+)$", text, re.MULTILINE)
            assert len(tokens) == 1, text  # once, not inline in every curl line
            assert "$TOKEN" in text
            assert "/docs" in text
            assert "/console" in text
            return tokens[0]
    pytest.fail("make run did not come up in time:\n" + "".join(lines))


def _wait_for_line(proc: subprocess.Popen[str], lines: list[str], text: str) -> None:
    """Read the demo's output until a line contains `text`."""
    assert proc.stdout is not None
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end and not any(text in line for line in lines):
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
    assert any(text in line for line in lines), "".join(lines)


def _changes(port: int, auth: dict[str, str]) -> list[dict[str, object]]:
    """The user's change feed, once the writes already read are numbered into it.

    A commit is numbered by a drain that runs right after it, in the writer's process, or by the
    5 s drain cron; a read can come between the two, so the feed is looked at until that bound.
    """
    end = time.monotonic() + 10
    while True:
        page = httpx.get(f"http://127.0.0.1:{port}/api/v1/smart/changes", headers=auth, timeout=30)
        assert page.status_code == 200, page.text
        changes: list[dict[str, object]] = page.json()["changes"]
        if changes or time.monotonic() > end:
            return changes
        time.sleep(0.2)


@pytest.mark.timeout(
    400
)  # a fresh setup, the backfill's burst and a graceful stop, on a busy machine
def test_make_run_serves_the_demo_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, sim_port = free_port(), free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("WHOOPSYNC_", "MAKE", "MFLAGS"))
    } | {
        "DEMO_DIR": str(tmp_path / "run"),
        "DEMO_PORT": str(port),
        "DEMO_SIM_PORT": str(sim_port),
        "DEMO_USERS": "2",
        "DEMO_RECEIVER_SUMMARY_SECONDS": "2",
    }
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        token = _wait_for_token(proc, lines)
        auth = {"Authorization": f"Bearer {token}"}
        read = httpx.get(f"http://127.0.0.1:{port}/api/v1/smart/recovery", headers=auth, timeout=30)
        assert read.status_code == 200, read.text
        assert read.json()["status"] == "success"
        assert read.json()["data"], "the demo user has recoveries"
        status = httpx.get(f"http://127.0.0.1:{port}/api/v1/smart/sync-status", headers=auth)
        assert status.json()["sync_status"]["recovery"]["sync_status"] == "success"
        assert _changes(port, auth), "the backfill's records are in the change feed"
        _wait_for_line(proc, lines, "app backend: verified push")
        _wait_for_line(proc, lines, "The backfill is done; once more, what to try:")
        _wait_for_line(proc, lines, "verified pushes in the last 2 s")  # summaries, not a line each
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        # The demo gives each of its three processes 15 s to stop before it kills it.
        proc.communicate(timeout=60)
    for p in (port, sim_port):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{p}/healthz", timeout=2)
    pushes = [line for line in lines if line.startswith("app backend: verified push ")]
    assert len(pushes) == 1, "".join(lines)
    logs = {name: (tmp_path / "run" / name).read_text() for name in ("serve.log", "sim.log")}
    for name, text in logs.items():
        assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"
        assert "\x1b[" not in text, f"{name} carries colour codes"
    # The simulator's data set is kept for the next `make run`.
    assert (tmp_path / "run" / "sim-state.pickle").stat().st_size > 0
