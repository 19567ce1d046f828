"""Wake-ups for live readers: the table is the truth, this only says "look again".

Within a process, waiters are asyncio events per user. Across processes the drainer publishes the
users it numbered changes for on a Redis channel, and each process that has live readers listens
there with one connection. A lost message costs at most one heartbeat: readers look again then.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable, Iterator

import orjson
import structlog
from redis.asyncio import Redis

log = structlog.get_logger(__name__)

CHANNEL = "whoopsync:changes"


class ChangeNotifier:
    """Per-user wake-ups, in this process and, with Redis, in every process."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._publisher: Redis | None = None
        self._listening = asyncio.Event()
        self._closed = False

    @contextlib.contextmanager
    def subscribe(self, user_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set whenever changes of this user are numbered (clear it before each look)."""
        if self.redis_url and self._listener is None and not self._closed:
            self._listener = asyncio.create_task(self._listen(self.redis_url))
        event = asyncio.Event()
        self._waiters.setdefault(user_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(user_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[user_id]

    async def ready(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109 - a bound, not a deadline
        """Wait (briefly) until wake-ups from other processes arrive here; a reader that looks at
        the table after this misses no wake-up."""
        if self._listener is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._listening.wait()

    def wake(self, user_ids: Iterable[uuid.UUID]) -> None:
        """Wake this process's readers of these users."""
        for user_id in user_ids:
            for event in self._waiters.get(user_id, ()):
                event.set()

    async def publish(self, user_ids: set[uuid.UUID]) -> None:
        """Wake readers here and, with Redis, in every other process."""
        self.wake(user_ids)
        if not self.redis_url or not user_ids or self._closed:
            return
        if self._publisher is None:
            self._publisher = Redis.from_url(self.redis_url, socket_timeout=2.0)
        try:
            await self._publisher.publish(CHANNEL, orjson.dumps(sorted(str(u) for u in user_ids)))
        except Exception as exc:  # Redis away: readers elsewhere look again at their heartbeat
            log.warning("feed.publish_failed", error=type(exc).__name__)

    async def _listen(self, url: str) -> None:
        while True:
            client = Redis.from_url(url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self._listening.set()
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=5.0
                        )
                        if message is not None:
                            self.wake(uuid.UUID(u) for u in orjson.loads(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed.listen_failed", error=type(exc).__name__)
                await asyncio.sleep(1.0)
            finally:
                self._listening.clear()
                await client.aclose()

    async def aclose(self) -> None:
        """Stop listening and close the connections."""
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._publisher is not None:
            await self._publisher.aclose()
            self._publisher = None
