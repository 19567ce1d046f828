"""Group concurrent calls into batches: what arrives while a batch is in flight goes in the next.

A call alone is sent at once (no waiting for company); under a burst, each round trip carries
every call that arrived during the previous one, so the cost per call falls as the load rises
(group commit). A failed batch fails each of its callers with the same error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Calls `flush(items)` with the items submitted meanwhile; `flush` returns one result per item."""

    def __init__(
        self,
        flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_size: int = 100,
        max_in_flight: int = 2,
    ) -> None:
        self._flush = flush
        self._max_size = max_size
        self._max_in_flight = max_in_flight
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._senders: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """The result of `item`, once the batch it went out in has returned."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if len(self._senders) < self._max_in_flight:
            sender = asyncio.create_task(self._send())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return await future

    async def _send(self) -> None:
        # Started from submit(): by the time it runs, every call of the same loop turn is queued.
        while self._waiting:
            batch = self._waiting[: self._max_size]
            del self._waiting[: self._max_size]
            try:
                results = list(await self._flush([item for item, _ in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for {len(batch)} items")
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=False):
                if not future.done():  # its caller may have gone (a dropped connection)
                    future.set_result(result)
