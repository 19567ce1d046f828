"""An arq Worker that outlives Redis outages.

arq's loop raises on the first Redis error, and its `close()` raises again, so a ten-second Redis
restart would end the process. Here a Redis failure in one poll (fetching due jobs, starting one,
the heartbeat, the crons) is logged, the loop waits a moment and polls again; redis-py reconnects
on the next command. Jobs that were running meanwhile carry on: the database, not Redis, holds
their outcome, and the inbox sweeper re-enqueues whatever a lost hand-off left pending.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from arq.worker import Worker
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

# Redis failures: redis-py's own errors and the socket's.
REDIS_FAILURES = (RedisError, OSError)
RETRY_DELAY = 0.5  # seconds between polls while Redis is away


class ResilientWorker(Worker):
    """arq's Worker; a Redis failure pauses the poll loop instead of ending the process."""

    _redis_down_since: float | None = None

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except REDIS_FAILURES as exc:
            if self._redis_down_since is None:
                self._redis_down_since = time.monotonic()
                log.warning("worker.redis_unavailable", error=type(exc).__name__)
            await asyncio.sleep(RETRY_DELAY)
            return
        if self._redis_down_since is not None:
            down = time.monotonic() - self._redis_down_since
            self._redis_down_since = None
            log.info("worker.redis_back", seconds_down=round(down, 1))

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's start, giving back the slot it had taken when Redis fails while starting a job."""
        try:
            await super().start_jobs(job_ids)
        except REDIS_FAILURES:
            # arq counts the job and holds a semaphore slot before its MULTI/EXEC; a failure there
            # leaves both taken for a job that never started. Give them back only then: a failure
            # after arq's own release (it handles a lost WATCH itself) must not free a slot twice.
            running = sum(1 for task in self.tasks.values() if not task.done())
            if self.job_counter > running:
                self.job_counter -= 1
                self.sem.release()
            raise

    async def close(self) -> None:
        """arq's close; with Redis away, still close what the jobs' context holds."""
        try:
            await super().close()
        except REDIS_FAILURES as exc:
            log.warning("worker.close_without_redis", error=type(exc).__name__)
            if self.on_shutdown:
                await self.on_shutdown(self.ctx)
