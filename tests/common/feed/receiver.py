"""The app's backend in tests: a real HTTP server that keeps every push and answers with the
status codes it is told to, one per request (then 204)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Push:
    """One request as the receiver got it, and what it answered."""

    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """What came in, and the answers still to give."""

    url: str = ""
    pushes: list[Push] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    hold: asyncio.Event | None = None
    delay: float = 0.0  # seconds before each answer (a slow receiver)
    incoming: int = 0
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for(self, count: int, timeout: float = 60.0) -> list[Push]:  # noqa: ASYNC109
        """Wait until `count` pushes were answered 2xx."""
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(lambda: len(self.ok()) >= count)
        return self.ok()

    def ok(self) -> list[Push]:
        """The pushes answered 2xx."""
        return [p for p in self.pushes if 200 <= p.answered < 300]


@asynccontextmanager
async def serve_receiver() -> AsyncIterator[Receiver]:
    """A receiver on a free port of 127.0.0.1."""
    receiver = Receiver()

    async def push(request: Request) -> Response:
        body = await request.body()
        receiver.incoming += 1
        if receiver.hold is not None:
            await receiver.hold.wait()
        if receiver.delay:
            await asyncio.sleep(receiver.delay)
        code = receiver.answers.pop(0) if receiver.answers else 204
        async with receiver.arrived:
            receiver.pushes.append(Push(dict(request.headers), body, code))
            receiver.arrived.notify_all()
        return Response(status_code=code)

    app = Starlette(routes=[Route("/push", push, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}/push"
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.should_exit = True
        await task
        sock.close()
