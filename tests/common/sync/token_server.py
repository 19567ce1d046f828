"""A stand-in for WHOOP's token endpoint that rotates refresh tokens like WHOOP does, and a tiny
real HTTP server around it (plus one API endpoint) for tests that span processes."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class Rotation:
    """Every refresh kills the refresh token it used and the access token before it."""

    def __init__(self) -> None:
        self.refresh_token, self.access_token = "r0", "a0"  # what connect() stores
        self.refreshes = 0
        self.spent_reuse = 0  # refreshes attempted with a token that was already rotated away
        self._lock = threading.Lock()

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Answer one token request."""
        with self._lock:
            if form.get("refresh_token") != self.refresh_token:
                self.spent_reuse += 1
                return 400, {"error": "invalid_grant", "error_description": "token spent"}
            self.refreshes += 1
            self.refresh_token = f"r{self.refreshes}"
            self.access_token = f"a{self.refreshes}"
            return 200, {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_in": 3600,
                "scope": "offline read:profile",
                "token_type": "bearer",
            }

    def authorized(self, header: str | None) -> bool:
        """Whether a request carries the one live access token."""
        return header == f"Bearer {self.access_token}"


PROFILE = {"user_id": 10129, "email": "jo@example.com", "first_name": "Jo", "last_name": "Ro"}


def serve(rotation: Rotation) -> ThreadingHTTPServer:
    """Start `/oauth/token` and `/developer/v2/user/profile/basic` on a free port, in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            self._answer(*rotation.token(form))

        def do_GET(self) -> None:
            if rotation.authorized(self.headers.get("Authorization")):
                self._answer(200, PROFILE)
            else:
                self._answer(401, {"error": "unauthorized"})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
