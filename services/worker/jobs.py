"""The arq functions: the shared job functions of `common.sync.jobs`, each with its explicit
`max_tries` and `timeout` (the in-process queue applies the same numbers)."""

from __future__ import annotations

from typing import cast

from arq.typing import WorkerCoroutine
from arq.worker import Function, func

from common.sync.jobs import JOBS


def functions() -> list[Function]:
    """Every job as an arq Function with its own retry budget and timeout."""
    return [
        func(
            cast(WorkerCoroutine, spec.func),
            name=spec.name,
            max_tries=spec.max_tries,
            timeout=spec.timeout,
        )
        for spec in JOBS.values()
    ]
