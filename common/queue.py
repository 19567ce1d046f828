"""Enqueueing jobs: arq on Redis in production, an in-process runner in the embedded mode.

Both run the same job functions (`async def job(ctx, *plain_ids)`) under the same policy: a job that
raises `arq.Retry(defer=…)` runs again after the delay until its `max_tries`; any other exception, or
running past its `timeout`, ends it. Jobs are at-least-once, so every job is idempotent, and dedup
lives in the database, never in a queue id. Jobs lost with a process (the in-process queue is memory
only) or with Redis are recovered by the inbox sweeper, which enqueues recorded events still
pending. Each queue says since when its oldest job has been waiting for a worker (`waiting_since`):
every job handed on before then has started, so the sweeper takes only those events for lost and
never piles copies onto a queue that is merely behind.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from arq import Retry
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.asyncio import BlockingConnectionPool

from common import tracing
from common.config import Settings

if TYPE_CHECKING:
    from opentelemetry.context import Context

log = structlog.get_logger(__name__)

JobFunc = Callable[..., Awaitable[Any]]


class QueueUnavailable(Exception):
    """The job could not be handed to the queue (Redis down or too slow)."""


class Queue(Protocol):
    """Where jobs are handed over; raises QueueUnavailable when that failed."""

    async def enqueue(self, job_name: str, *args: Any, _defer_by: float | None = None) -> None:
        """Run `job_name(*args)` soon (or after `_defer_by` seconds)."""
        ...

    async def waiting_since(self) -> float | None:
        """When (epoch seconds) the oldest job that is due but not started became due; None when
        no job waits for a worker. Raises QueueUnavailable when the queue cannot say."""
        ...


@dataclass(frozen=True)
class JobSpec:
    """A job function and its retry policy, the same under arq and in-process."""

    name: str
    func: JobFunc
    max_tries: int
    timeout: float


def arq_redis(url: str, *, connect_timeout: float = 1.0, max_connections: int = 64) -> ArqRedis:
    """An arq Redis client that connects lazily (no ping), so a process starts while Redis is down.

    The pool is bounded: a burst of webhooks waits for a free connection instead of opening
    hundreds at once.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        socket_connect_timeout=connect_timeout,
        socket_timeout=5.0,
    )
    redis = ArqRedis(connection_pool=pool)
    redis.auto_close_connection_pool = (
        True  # what redis-py's from_pool does: aclose() closes the pool
    )
    return redis


# The score of the oldest due job no worker has started: arq keeps a running job in the queue, with
# its in-progress key, until it finishes. Only the first `limit` due jobs are looked at; when all of
# them are running, the queue is as far behind as the oldest of them (the cautious answer).
_OLDEST_WAITING = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
for i = 1, #due, 2 do
  if redis.call('EXISTS', ARGV[3] .. due[i]) == 0 then return due[i + 1] end
end
if #due > 0 and #due >= 2 * tonumber(ARGV[2]) then return due[2] end
return false
"""
# How many running jobs the look-up steps over; far more than the workers' job slots together.
WAITING_SCAN = 1000


# The time an enqueue may take before it counts as failed: the webhook answers within it, and an
# event whose hand-off ran out of time is enqueued by the inbox sweeper instead.
ENQUEUE_BUDGET = 0.25


class ArqQueue:
    """Jobs go to arq on Redis; a failure to enqueue becomes QueueUnavailable, quickly."""

    def __init__(self, pool: ArqRedis, *, timeout: float = ENQUEUE_BUDGET) -> None:
        self.pool = pool
        self.timeout = timeout
        self._oldest_waiting = pool.register_script(_OLDEST_WAITING)

    async def enqueue(self, job_name: str, *args: Any, _defer_by: float | None = None) -> None:
        """Add a job to arq's queue (with its producer's trace context when tracing)."""
        await self.enqueue_many(job_name, [args], _defer_by=_defer_by)

    async def enqueue_many(
        self,
        job_name: str,
        args_list: Sequence[tuple[Any, ...]],
        _defer_by: float | None = None,
        *,
        parents: Sequence[Context | None] | None = None,
    ) -> None:
        """Add one job per arguments tuple, all in one round trip (a burst of webhooks); each
        carries its own producer span's context when tracing, that span under the job's entry of
        `parents` (its submitter's `tracing.current()`) when given."""
        jobs: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        for index, args in enumerate(args_list):
            job_id = uuid.uuid4().hex
            parent = None if parents is None else parents[index]
            with tracing.producer(job_name, "arq", job_id, parent) as carrier:
                jobs.append((job_id, args, {tracing.TRACE_KEY: carrier} if carrier else {}))
        try:
            async with asyncio.timeout(self.timeout):
                await self._add(job_name, jobs, _defer_by)
        except Exception as exc:  # OSError, TimeoutError and redis-py's own errors alike
            raise QueueUnavailable(str(exc) or type(exc).__name__) from exc

    async def waiting_since(self) -> float | None:
        """The score (arq's due time) of the oldest due job no worker has started."""
        try:
            async with asyncio.timeout(self.timeout):
                score = await self._oldest_waiting(
                    keys=[self.pool.default_queue_name],
                    args=[timestamp_ms(), WAITING_SCAN, in_progress_key_prefix],
                )
        except Exception as exc:
            raise QueueUnavailable(str(exc) or type(exc).__name__) from exc
        return None if score is None else float(score) / 1000

    async def _add(
        self,
        job_name: str,
        jobs: Sequence[tuple[str, tuple[Any, ...], dict[str, Any]]],
        defer_by: float | None,
    ) -> None:
        """What arq's `enqueue_job` writes (same job key, payload, expiry and score) for each job,
        in one MULTI/EXEC round trip. arq first WATCHes the key and checks it and its result key
        exist, which guards a caller-chosen `_job_id`; ours are random, so that only cost round
        trips."""
        now = timestamp_ms()
        defer_ms = round(defer_by * 1000) if defer_by else 0
        async with self.pool.pipeline(transaction=True) as pipe:
            for job_id, args, kwargs in jobs:
                job = serialize_job(
                    job_name, args, kwargs, None, now, serializer=self.pool.job_serializer
                )
                pipe.psetex(job_key_prefix + job_id, defer_ms + self.pool.expires_extra_ms, job)
                pipe.zadd(self.pool.default_queue_name, {job_id: now + defer_ms})
            await pipe.execute()


@dataclass
class _Pending:
    job_id: str
    spec: JobSpec
    args: tuple[Any, ...]
    job_try: int = 1
    token: int = 0
    trace: dict[str, str] | None = None


class InProcessQueue:
    """Runs jobs in this process with bounded concurrency, arq's retry policy, and a clock for crons."""

    def __init__(
        self, jobs: Mapping[str, JobSpec], ctx: dict[str, Any], *, concurrency: int = 4
    ) -> None:
        self.jobs = dict(jobs)
        self.ctx = ctx
        self.ctx.setdefault("queue", self)
        self.concurrency = concurrency
        self._ready: asyncio.Queue[_Pending] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._unfinished = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._ids = itertools.count(1)
        # The jobs put in the ready queue and not yet taken by a runner, oldest first: when each
        # became due (wall clock, like arq's scores).
        self._waiting: dict[int, float] = {}

    async def enqueue(self, job_name: str, *args: Any, _defer_by: float | None = None) -> None:
        """Queue a job in memory (deferred jobs wait in a timer task)."""
        spec = self.jobs[job_name]
        job_id = f"{job_name}:{next(self._ids)}"
        with tracing.producer(job_name, "in_process", job_id) as carrier:
            self._unfinished += 1
            self._idle.clear()
            self._later(_Pending(job_id, spec, args, trace=carrier), _defer_by)

    async def waiting_since(self) -> float | None:
        """When the oldest job in the ready queue (not taken by a runner yet) became due."""
        return next(iter(self._waiting.values()), None)

    def _put(self, pending: _Pending) -> None:
        pending.token = next(self._ids)
        self._waiting[pending.token] = time.time()
        self._ready.put_nowait(pending)

    def _later(self, pending: _Pending, delay: float | None) -> None:
        if not delay:
            self._put(pending)
            return

        async def wait_then_put() -> None:
            await asyncio.sleep(delay)
            self._put(pending)

        self._spawn(wait_then_put())

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        """Start the runners (call once, inside the running loop)."""
        for _ in range(self.concurrency):
            self._spawn(self._runner())

    def every(self, seconds: float, func: JobFunc, *, timeout: float, name: str) -> None:
        """Run a cron function every `seconds` (the embedded stand-in for arq's cron jobs)."""

        async def tick() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    async with asyncio.timeout(timeout):
                        await func({**self.ctx, "job_try": 1, "job_id": f"cron:{name}"})
                except Exception:
                    log.exception("cron.failed", cron=name)

        self._spawn(tick())

    async def _runner(self) -> None:
        while True:
            pending = await self._ready.get()
            self._waiting.pop(pending.token, None)
            try:
                await self._run(pending)
            finally:
                self._ready.task_done()

    async def _run(self, pending: _Pending) -> None:
        spec = pending.spec
        ctx = {**self.ctx, "job_try": pending.job_try, "job_id": pending.job_id}
        try:
            with tracing.consumer(
                spec.name, "in_process", pending.job_id, pending.trace, pending.job_try
            ):
                async with asyncio.timeout(spec.timeout):
                    await spec.func(ctx, *pending.args)
        except Retry as retry:
            if pending.job_try < spec.max_tries:
                pending.job_try += 1
                self._later(pending, (retry.defer_score or 0) / 1000)
                return
            log.warning("job.exhausted", job=spec.name, tries=pending.job_try)
        except Exception:
            log.exception("job.crashed", job=spec.name)
        self._done()

    def _done(self) -> None:
        self._unfinished -= 1
        if self._unfinished == 0:
            self._idle.set()

    async def join(self) -> None:
        """Wait until every queued job (retries included) has finished."""
        await self._idle.wait()

    async def close(self) -> None:
        """Stop runners, timers and crons; unfinished jobs are dropped: their events stay pending
        in the inbox, and the next start hands them on again (`resume_pending`)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


def create_queue(
    settings: Settings,
    redis: ArqRedis | None,
    *,
    jobs: Mapping[str, JobSpec] | None = None,
    ctx: dict[str, Any] | None = None,
    concurrency: int = 4,
) -> Queue:
    """ArqQueue over `redis` when Redis is configured, else an (unstarted) InProcessQueue."""
    if settings.redis_url and redis is not None:
        return ArqQueue(redis)
    if jobs is None or ctx is None:
        raise ValueError("the in-process queue needs the job functions and their context")
    return InProcessQueue(jobs, ctx, concurrency=concurrency)


__all__ = [
    "ENQUEUE_BUDGET",
    "ArqQueue",
    "InProcessQueue",
    "JobFunc",
    "JobSpec",
    "Queue",
    "QueueUnavailable",
    "arq_redis",
    "create_queue",
]
