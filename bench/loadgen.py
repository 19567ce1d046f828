"""Open-loop load from a separate process: requests sent on a schedule, bounded in time.

    python -m bench.loadgen PLAN.json RESULT.json

The plan is {"base_url", "connections", "requests": [[offset_s, method, path, headers, body], ...]}
(sorted by offset; body is text or null). Each request starts at its offset whether or not earlier
ones have answered (method POLL: the polling-on-read baseline, paging through a WHOOP
collection of the simulator until `body` records), over a pool of keep-alive HTTP/1.1 connections (a minimal client on asyncio
streams: httpx would cost more CPU than the servers under test). The result lists, per request,
[sent_at (epoch s), latency_s, status, source, detail] where source is the read API's
metadata.source, if any, and detail the reason a `stale_cache` answer gives (metadata.error) or an
error answer's code.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from typing import Any
from urllib.parse import urlsplit

SOURCE = re.compile(rb'"source":\s*"([a-z_]+)"')
REASON = re.compile(rb'"error":\s*"((?:[^"\\]|\\.)*)"')
CODE = re.compile(rb'"code":\s*"([a-z_]+)"')
Request = tuple[float, str, str, dict[str, str], str | None]


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, bytes]:
        """Send one request, read the whole answer.

        A kept-alive connection the server closed while idle (uvicorn closes them after a few
        seconds) fails before any byte of the answer; the request is then sent once more on a
        new connection, as HTTP clients do: the server never saw it.
        """
        reused = self.writer is not None and not self.writer.is_closing()
        try:
            return await self._exchange(method, path, headers, body)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
            partial = getattr(exc, "partial", b"")
            if not reused or partial:
                raise
            self.close()
            self.writer = None
            return await self._exchange(method, path, headers, body)

    async def _exchange(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(body or b'')}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        fields = {
            k.strip().lower(): v.strip()
            for k, _, v in (h.partition(":") for h in header_lines if h)
        }
        if fields.get("transfer-encoding", "").lower() == "chunked":
            data = await self._chunked()
        else:
            data = await self.reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            self.writer.close()
        return status, data

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        """Close the socket."""
        if self.writer is not None:
            self.writer.close()


async def _poll(
    conn: Connection, path: str, headers: dict[str, str], wanted: int
) -> tuple[int, str]:
    """The polling-on-read baseline: page through a WHOOP collection until `wanted` records."""
    records, calls, token = 0, 0, None
    while True:
        page = path if token is None else f"{path}&nextToken={token}"
        status, data = await conn.request("GET", page, headers, None)
        calls += 1
        if status != 200:
            return status, f"calls:{calls}"
        body = json.loads(data)
        records += len(body.get("records", []))
        token = body.get("next_token")
        if not token or records >= wanted:
            return status, f"calls:{calls}"


def answer_source(status: int, data: bytes) -> tuple[str | None, str | None]:
    """A read answer's metadata.source, and why: a stale_cache answer's reason, an error's code."""
    head = data[:200_000]
    match = SOURCE.search(head) if head else None
    source = match.group(1).decode() if match else None
    found = REASON.search(head) if source == "stale_cache" else None
    if found is None and status >= 300:
        found = CODE.search(head)
    return source, json.loads(b'"' + found.group(1) + b'"') if found else None


async def _one(pool: asyncio.Queue[Connection], req: Request, out: list[Any], index: int) -> None:
    _, method, path, headers, body = req
    conn = await pool.get()
    sent = time.time()
    started = time.perf_counter()
    source: str | None
    detail: str | None = None
    try:
        if method == "POLL":
            status, source = await _poll(conn, path, headers, int(body or 30))
        else:
            payload = body.encode() if body else None
            status, data = await conn.request(method, path, headers, payload)
            source, detail = answer_source(status, data)
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        conn.close()
        conn.writer = None
        status, source = 0, type(exc).__name__
    out[index] = [sent, time.perf_counter() - started, status, source, detail]
    pool.put_nowait(conn)


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    """Send the plan's requests on schedule; per-request results plus schedule slip."""
    url = urlsplit(plan["base_url"])
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(int(plan.get("connections", 64))):
        pool.put_nowait(Connection(url.hostname or "127.0.0.1", url.port or 80))
    requests: list[Request] = [tuple(r) for r in plan["requests"]]
    out: list[Any] = [None] * len(requests)
    tasks = set()
    start = time.perf_counter() + float(plan.get("start_delay", 0.2))
    started_at = time.time() + float(plan.get("start_delay", 0.2))
    slip = 0.0
    for index, req in enumerate(requests):
        delay = start + req[0] - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            slip = max(slip, -delay)
        task = asyncio.create_task(_one(pool, req, out, index))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=float(plan.get("drain_seconds", 30)))
    while not pool.empty():
        pool.get_nowait().close()
    return {"started_at": started_at, "max_slip_s": round(slip, 3), "results": out}


def main() -> int:
    """python -m bench.loadgen PLAN RESULT."""
    plan_path, result_path = sys.argv[1], sys.argv[2]
    with open(plan_path) as f:
        plan = json.load(f)
    result = asyncio.run(run(plan))
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
