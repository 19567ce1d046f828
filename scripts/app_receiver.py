"""The demo's stand-in for the app's backend: receives whoop-sync's pushes, verifies each with
the Standard Webhooks reference library, prints the first one, then one summary line every
SUMMARY_SECONDS (a backfill pushes hundreds a minute, which would bury the demo's banner).

python scripts/app_receiver.py PORT   (the secret comes from WHOOPSYNC_APP_WEBHOOK_SECRET)
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

HOOK = Webhook(os.environ["WHOOPSYNC_APP_WEBHOOK_SECRET"])
SUMMARY_SECONDS = float(os.environ.get("DEMO_RECEIVER_SUMMARY_SECONDS", "30"))


class Tally:
    """Verified pushes by type since the last summary, and in all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.recent: Counter[str] = Counter()
        self.total = 0
        self.refused = 0

    def add(self, push: dict[str, object]) -> bool:
        """Count a verified push; whether it is the first."""
        with self.lock:
            self.recent[str(push["type"])] += 1
            self.total += 1
            return self.total == 1

    def summary(self) -> str | None:
        """The line for the pushes since the last one (None when none came)."""
        with self.lock:
            recent, self.recent = self.recent, Counter()
            total, refused = self.total, self.refused
        if not recent:
            return None
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(recent.items()))
        extra = f"; {refused} refused" if refused else ""
        return (
            f"app backend: {sum(recent.values())} verified pushes in the last"
            f" {SUMMARY_SECONDS:.0f} s ({kinds}); {total} in all{extra}"
        )


TALLY = Tally()


class Receiver(BaseHTTPRequestHandler):
    """POST /push: 204 when the signature holds, 401 otherwise."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            push = HOOK.verify(body, dict(self.headers.items()))
        except WebhookVerificationError as exc:
            with TALLY.lock:
                TALLY.refused += 1
            print(f"app backend: refused a push ({exc})", flush=True)
            self.send_response(401)
            self.end_headers()
            return
        if TALLY.add(push):
            record = push["record"] or {}
            print(
                f"app backend: verified push {push['type']} user={push['user_id']} "
                f"id={record.get('id', record.get('cycle_id', '-'))} cursor={push['cursor']}"
                f" (from now on a summary every {SUMMARY_SECONDS:.0f} s)",
                flush=True,
            )
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the summaries are the output."""


def summarise(stop: threading.Event) -> None:
    """Print a summary every SUMMARY_SECONDS until stopped."""
    while not stop.wait(SUMMARY_SECONDS):
        line = TALLY.summary()
        if line:
            print(line, flush=True)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver)
    stop = threading.Event()
    threading.Thread(target=summarise, args=(stop,), daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    stop.set()
