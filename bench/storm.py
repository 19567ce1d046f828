"""A storm of webhooks: many signed deliveries sent at the same moment, each on its own
connection as WHOOP sends them, and the time each waited for its answer.

The client is plain asyncio streams (no HTTP library between the clock and the socket), and every
webhook is signed before the storm starts, so what is timed is the server's answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.webhooks import SignedWebhook

PATH = "/webhooks/whoop"


@dataclass(frozen=True)
class Answer:
    """One delivery's outcome: its HTTP status (0: no answer) and seconds from send to answer."""

    status: int
    seconds: float


def _request(host: str, hook: SignedWebhook) -> bytes:
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"X-WHOOP-Signature: {hook.signature}\r\n"
        f"X-WHOOP-Signature-Timestamp: {hook.timestamp}\r\n"
        f"Content-Length: {len(hook.body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + hook.body


async def _deliver(host: str, port: int, payload: bytes, go: asyncio.Event, limit: float) -> Answer:
    await go.wait()
    started = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(payload)
            await writer.drain()
            status_line = await reader.readline()
        status = int(status_line.split()[1])
    except (OSError, TimeoutError, ValueError, IndexError):
        status = 0
    seconds = time.perf_counter() - started
    if writer is not None:
        writer.close()
    return Answer(status, seconds)


async def storm(url: str, hooks: Sequence[SignedWebhook], limit: float = 30.0) -> list[Answer]:
    """Send every webhook at once to `url` (http://host:port); the answers, in sending order."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    go = asyncio.Event()
    tasks = [
        asyncio.create_task(_deliver(host, port, _request(host, hook), go, limit)) for hook in hooks
    ]
    await asyncio.sleep(0)  # every task is waiting on the start line
    go.set()
    return list(await asyncio.gather(*tasks))
