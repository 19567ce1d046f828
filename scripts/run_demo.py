"""`make run`: whoop-sync (`serve`, embedded backend) next to the WHOOP simulator, with demo users
connected through the real OAuth flow and a scenario that changes their data every few seconds.

State (settings, the SQLite database, the simulator's data set) lives in `.run/` and is reused by
the next `make run`, so the cache and the simulator keep agreeing.
Ctrl-C stops everything. Ports: 8001 (whoop-sync) and 8099 (simulator), or DEMO_PORT / DEMO_SIM_PORT.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("DEMO_DIR", ROOT / ".run"))
PORT = int(os.environ.get("DEMO_PORT", "8001"))
SIM_PORT = int(os.environ.get("DEMO_SIM_PORT", "8099"))
RECEIVER_PORT = int(os.environ.get("DEMO_RECEIVER_PORT", "0"))  # 0: any free port
USERS = int(os.environ.get("DEMO_USERS", "3"))
SCENARIO_SECONDS = os.environ.get("DEMO_SCENARIO_SECONDS", "10")
CLI = str(Path(sys.executable).with_name("whoop-sync"))
API = f"http://127.0.0.1:{PORT}"
SIM = f"http://127.0.0.1:{SIM_PORT}"


def settings() -> dict[str, str]:
    """The demo's settings, made once and kept in .run/demo.json."""
    STATE.mkdir(parents=True, exist_ok=True)
    path = STATE / "demo.json"
    if path.exists():
        saved: dict[str, str] = json.loads(path.read_text())
    else:
        saved = {
            "WHOOPSYNC_WHOOP_CLIENT_ID": "demo-client",
            "WHOOPSYNC_WHOOP_CLIENT_SECRET": secrets.token_urlsafe(24),
            "WHOOPSYNC_JWT_SECRET": secrets.token_urlsafe(32),
            "WHOOPSYNC_TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        }
    added = {  # what a demo.json from an older version lacks
        "WHOOPSYNC_APP_WEBHOOK_SECRET": "whsec_"
        + base64.b64encode(secrets.token_bytes(24)).decode(),
        "WHOOPSYNC_ADMIN_TOKEN": secrets.token_urlsafe(24),
    }
    if not path.exists() or added.keys() - saved.keys():
        saved = added | saved
        path.write_text(json.dumps(saved, indent=2))
        path.chmod(0o600)
    return {
        **saved,
        "WHOOPSYNC_DATABASE_URL": f"sqlite+aiosqlite:///{STATE / 'whoop-sync.db'}",
        "WHOOPSYNC_WHOOP_API_BASE_URL": f"{SIM}/developer",
        "WHOOPSYNC_WHOOP_OAUTH_BASE_URL": f"{SIM}/oauth/oauth2",
        "WHOOPSYNC_WHOOP_REDIRECT_URI": f"{API}/api/v1/whoop/callback",
        "WHOOPSYNC_APP_WEBHOOK_URL": f"http://127.0.0.1:{receiver_port()}/push",
        "WHOOPSYNC_LOG_FORMAT": os.environ.get("WHOOPSYNC_LOG_FORMAT", "console"),
    }


def receiver_port() -> int:
    """DEMO_RECEIVER_PORT, or a port free now, chosen once."""
    global RECEIVER_PORT
    if not RECEIVER_PORT:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            RECEIVER_PORT = sock.getsockname()[1]
    return RECEIVER_PORT


def start(env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    """Start the simulator, the app's backend stand-in and serve, each in a session of its own:
    a Ctrl-C in the terminal reaches this script alone, which stops each of them with exactly
    one SIGINT (a second one would make uvicorn give up its graceful stop, with a traceback)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("WHOOPSYNC_")} | env
    full.pop("WHOOPSYNC_REDIS_URL", None)
    logs = (STATE / "sim.log").open("ab")
    sim = subprocess.Popen(
        [
            CLI,
            "sim",
            "--port",
            str(SIM_PORT),
            "--users",
            str(USERS),
            "--days",
            "14",
            "--webhook-url",
            f"{API}/webhooks/whoop",
            "--scenario-interval",
            SCENARIO_SECONDS,
            "--state-file",
            str(STATE / "sim-state.pickle"),
        ],
        env=full,
        stdout=logs,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    serve = subprocess.Popen(
        [CLI, "serve", "--port", str(PORT)],
        env=full,
        stdout=(STATE / "serve.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    # Its lines go to this terminal: the first push, then a summary every 30 s.
    receiver = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "app_receiver.py"), str(receiver_port())],
        env=full,
        start_new_session=True,
    )
    return [sim, receiver, serve]


def wait_ready(url: str, procs: list[subprocess.Popen[bytes]], deadline: float = 60) -> None:
    """Wait until `url` answers 200, or give up when a process died or time ran out."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if any(p.poll() is not None for p in procs):
            raise SystemExit(
                f"whoop-sync: a process exited early; see {STATE}/serve.log and sim.log"
            )
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"whoop-sync: {url} did not answer within {deadline:.0f} s")


def token(user_id: uuid.UUID, env: dict[str, str]) -> str:
    """A dev token for a demo user, from `whoop-sync dev-token`."""
    out = subprocess.run(
        [CLI, "dev-token", "--user-id", str(user_id)],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def connect(user_id: uuid.UUID, whoop_user_id: int, bearer: str) -> None:
    """Connect one demo user through the real OAuth flow as an app should: connect, authorize,
    then hand WHOOP's code and state on with the user's bearer (`POST /api/v1/whoop/callback`)."""
    with httpx.Client(timeout=30) as http:
        auth = {"Authorization": f"Bearer {bearer}"}
        url = (
            http.get(f"{API}/api/v1/whoop/connect", headers=auth)
            .raise_for_status()
            .json()["authorization_url"]
        )
        redirect = http.get(f"{url}&login_hint={whoop_user_id}")
        if redirect.status_code != 302:
            raise SystemExit(f"whoop-sync: the simulator refused to authorize: {redirect.text}")
        query = parse_qs(urlsplit(redirect.headers["location"]).query)
        body = {"code": query["code"][0], "state": query["state"][0]}
        http.post(f"{API}/api/v1/whoop/callback", json=body, headers=auth).raise_for_status()


def tour() -> str:
    """The curl lines to try, with the bearer in $TOKEN."""
    h = '-H "Authorization: Bearer $TOKEN"'
    return "\n".join(
        [
            f"  curl -s {h} {API}/api/v1/smart/recovery",
            f"  curl -s {h} '{API}/api/v1/smart/sleep?limit=5'",
            f"  curl -s {h} '{API}/api/v1/smart/workout?force_refresh=true'",
            f"  curl -s {h} {API}/api/v1/smart/sync-status",
            f"  curl -s {h} {API}/api/v1/whoop/connection",
            f"  curl -s {h} '{API}/api/v1/smart/changes?limit=5'   # then ?cursor=<next_cursor>",
            f"  curl -sN {h} {API}/api/v1/smart/events   # live; Ctrl-C to stop",
            f"  curl -s {API}/metrics | grep whoopsync_",
            f"  curl -s {SIM}/_sim/counters      # WHOOP calls the simulator has seen",
        ]
    )


def banner(env: dict[str, str], users: list[uuid.UUID], members: list[Any], bearer: str) -> str:
    """What to do now: the users, one token exported once, the pages and the curl lines."""
    rows = [f"  {u}  (WHOOP user {m['user_id']})" for u, m in zip(users, members, strict=True)]
    return "\n".join(
        [
            f"\nwhoop-sync is running at {API} (simulator at {SIM}); logs in {STATE}/",
            f"{len(users)} demo users connected; webhooks arrive every {SCENARIO_SECONDS} s:",
            *rows,
            "",
            f"Interactive API docs: {API}/docs",
            f"Operator console:     {API}/console   (sign in with the admin token below)",
            f"  admin token: {env['WHOOPSYNC_ADMIN_TOKEN']}",
            "",
            f"A bearer token for demo user {users[0]}; paste this into your shell:",
            f"  export TOKEN={bearer}",
            "(another user's, from the project root: .venv/bin/whoop-sync dev-token --user-id UUID,"
            f" with the settings of {STATE}/demo.json in the environment)",
            "",
            "Then try:",
            tour(),
            "",
            "The app's backend stand-in prints the first push it verifies, then a summary every 30 s.",
            "Ctrl-C stops everything.",
        ]
    )


def wait_for_backfill(bearers: list[str], procs: list[subprocess.Popen[bytes]]) -> bool:
    """Wait (a minute at most) until every demo user's four types were synced: the backfill's
    burst is over. Whether it was."""
    end = time.monotonic() + 60
    while time.monotonic() < end and all(p.poll() is None for p in procs):
        try:
            done = all(_synced(bearer) for bearer in bearers)
        except httpx.HTTPError:
            done = False
        if done:
            return True
        time.sleep(1)
    return False


def _synced(bearer: str) -> bool:
    status = httpx.get(
        f"{API}/api/v1/smart/sync-status", headers={"Authorization": f"Bearer {bearer}"}, timeout=5
    ).json()["sync_status"]
    return all(entry.get("last_sync_at") for entry in status.values())


def main() -> int:
    """Set up, start, connect, print the tour, then wait for Ctrl-C."""
    # Ctrl-C stops the demo even when its shell started it with SIGINT ignored (a background
    # job of a non-interactive shell): its processes then inherit the default, not the ignore.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    env = settings()
    procs = start(env)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        wait_ready(f"{SIM}/_sim/health", procs)
        wait_ready(f"{API}/readyz", procs)
        members = httpx.get(f"{SIM}/_sim/users").json()["users"]
        users = [
            uuid.uuid5(uuid.NAMESPACE_URL, f"whoop-sync-demo-{i}") for i in range(len(members))
        ]
        bearers = [token(u, env) for u in users]
        for user_id, member, bearer in zip(users, members, bearers, strict=True):
            connect(user_id, member["user_id"], bearer)
        print(banner(env, users, members, bearers[0]), flush=True)
        if wait_for_backfill(bearers, procs):
            print("\nThe backfill is done; once more, what to try:", flush=True)
            print(banner(env, users, members, bearers[0]), flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("whoop-sync: a process exited; see the logs", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
