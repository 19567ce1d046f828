"""The demo's stand-in for the app's backend: receives whoop-sync's pushes, verifies each with
the Standard Webhooks reference library, and prints one line per verified push.

python scripts/app_receiver.py PORT   (the secret comes from WHOOPSYNC_APP_WEBHOOK_SECRET)
"""

from __future__ import annotations

import contextlib
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

HOOK = Webhook(os.environ["WHOOPSYNC_APP_WEBHOOK_SECRET"])


class Receiver(BaseHTTPRequestHandler):
    """POST /push: 204 when the signature holds, 401 otherwise."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            push = HOOK.verify(body, dict(self.headers.items()))
        except WebhookVerificationError as exc:
            print(f"app backend: refused a push ({exc})", flush=True)
            self.send_response(401)
            self.end_headers()
            return
        record = push["record"] or {}
        print(
            f"app backend: verified push {push['type']} user={push['user_id']} "
            f"id={record.get('id', record.get('cycle_id', '-'))} cursor={push['cursor']}",
            flush=True,
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the verified pushes are the output."""


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
