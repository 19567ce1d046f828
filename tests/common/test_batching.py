"""Batcher: calls that arrive together share a batch, each gets its own result, a call alone is
sent at once, and a failed batch fails its callers only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from common.batching import Batcher


class Recorder:
    """A flush that remembers its batches and can be told to fail or hold."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail_on: set[int] = set()
        self.gate = asyncio.Event()
        self.gate.set()

    async def flush(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.fail_on & set(items):
            raise RuntimeError("batch refused")
        return [item * 10 for item in items]


async def test_a_call_alone_goes_at_once() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.flush)
    assert await batcher.submit(7) == 70
    assert recorder.batches == [[7]]


async def test_calls_arriving_together_share_batches_and_keep_their_results() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.flush, max_size=100, max_in_flight=2)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(300)))
    assert results == [n * 10 for n in range(300)]
    assert sorted(n for batch in recorder.batches for n in batch) == list(range(300))
    assert len(recorder.batches) <= 4
    assert max(len(batch) for batch in recorder.batches) <= 100


async def test_calls_arriving_during_a_batch_go_in_the_next() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batcher = Batcher(recorder.flush, max_in_flight=1)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.01)  # the first batch is in flight, held at the gate
    later = [asyncio.create_task(batcher.submit(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0.01)
    recorder.gate.set()
    assert await asyncio.gather(first, *later) == [10, 20, 30, 40]
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_a_failed_batch_fails_its_callers_only() -> None:
    recorder = Recorder()
    recorder.fail_on = {2}
    recorder.gate.clear()
    batcher = Batcher(recorder.flush, max_in_flight=1)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.01)
    refused = [asyncio.create_task(batcher.submit(n)) for n in (2, 3)]
    await asyncio.sleep(0.01)
    recorder.gate.set()
    assert await first == 10
    for task in refused:
        with pytest.raises(RuntimeError, match="batch refused"):
            await task
    assert await batcher.submit(4) == 40
