"""The storm client: every webhook sent at once, each on its own connection, and each answer's
status kept in sending order (0 when nothing answered)."""

from __future__ import annotations

import asyncio

from bench.storm import PATH, storm
from bench.webhooks import sleep_updates
from common.whoop.signature import verify


async def test_every_delivery_is_sent_signed_and_answered_in_order() -> None:
    seen: list[tuple[str, bytes]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
        body = await reader.readexactly(int(headers["Content-Length"]))
        verify(
            "s",
            headers["X-WHOOP-Signature-Timestamp"],
            body,
            headers["X-WHOOP-Signature"],
            tolerance_seconds=300,
        )
        seen.append((head.split(" ")[1], body))
        status = 204 if len(seen) % 2 else 503
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        answers = await storm(f"http://127.0.0.1:{port}", list(sleep_updates("s", 50)))
    assert len(answers) == 50
    assert sorted(a.status for a in answers) == [204] * 25 + [503] * 25
    assert all(path == PATH for path, _ in seen)
    assert len({body for _, body in seen}) == 50
    assert all(a.seconds > 0 for a in answers)


async def test_a_delivery_nobody_answers_has_status_zero() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    answers = await storm(f"http://127.0.0.1:{port}", list(sleep_updates("s", 3)), limit=2)
    assert [a.status for a in answers] == [0, 0, 0]
