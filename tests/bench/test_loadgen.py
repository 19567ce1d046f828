"""The load generator's connection: a kept-alive connection the server closed is not a failed read."""

from __future__ import annotations

import asyncio

from bench.loadgen import Connection

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def _serve_once_then_close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer one request, then close the kept-alive connection as an idle server does."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(ANSWER)
    await writer.drain()
    writer.close()


async def test_request_on_a_connection_the_server_closed_is_sent_again() -> None:
    server = await asyncio.start_server(_serve_once_then_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = Connection("127.0.0.1", port)
    try:
        assert await conn.request("GET", "/", {}, None) == (200, b"ok")
        await asyncio.sleep(0.05)  # the server has closed its end by now
        assert await conn.request("GET", "/", {}, None) == (200, b"ok")
    finally:
        conn.close()
        server.close()
        await server.wait_closed()
