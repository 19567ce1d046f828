"""The arq functions: the shared job functions of `common.sync.jobs`, each with its explicit
`max_tries` and `timeout` (the in-process queue applies the same numbers), run under the CONSUMER
span of the trace context their enqueue carried (`common.tracing`)."""

from __future__ import annotations

from typing import Any, cast

from arq.typing import WorkerCoroutine
from arq.worker import Function, func

from common import tracing
from common.queue import JobFunc
from common.sync.jobs import JOBS


def traced(name: str, job: JobFunc) -> JobFunc:
    """`job` taking the producer's context from its `_trace` keyword (present only when the
    enqueuing process traces), run under a CONSUMER span when this process traces."""

    async def run(ctx: dict[str, Any], *args: Any, _trace: dict[str, str] | None = None) -> Any:
        job_id, attempt = str(ctx.get("job_id", "")), int(ctx.get("job_try", 1))
        with tracing.consumer(name, "arq", job_id, _trace, attempt):
            return await job(ctx, *args)

    run.__qualname__ = run.__name__ = getattr(job, "__name__", name)
    return run


def functions() -> list[Function]:
    """Every job as an arq Function with its own retry budget and timeout."""
    return [
        func(
            cast(WorkerCoroutine, traced(spec.name, spec.func)),
            name=spec.name,
            max_tries=spec.max_tries,
            timeout=spec.timeout,
        )
        for spec in JOBS.values()
    ]
