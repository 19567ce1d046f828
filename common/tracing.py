"""Traces (SPEC §3.4): OpenTelemetry when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, nothing otherwise.

Off (the default) nothing of OpenTelemetry is imported and every hook below is one shared no-op
context manager. On, a process exports over OTLP/HTTP (the standard `OTEL_*` variables apply)
through the official instrumentations (FastAPI/ASGI, SQLAlchemy, Redis, httpx) plus our spans:

- the queue hop, per the messaging conventions: the enqueue is a PRODUCER span (`send JOB`) whose
  context travels with the job (the `_trace` keyword of an arq job, a field of an in-process one),
  and the job a CONSUMER span (`process JOB`) under it, so one trace follows a webhook from its
  receipt through its job, the WHOOP calls and the writes to its push; work handed to another
  task (an enqueue in a batch, a push sender) carries its caller's context (`current`, `within`);
- each WHOOP call (`WHOOP GET /v2/...`), each guarded upsert, each push to the app's backend.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "TRACE_KEY",
    "configure",
    "consumer",
    "current",
    "enabled",
    "instrument_app",
    "instrument_engine",
    "producer",
    "shutdown",
    "span",
    "within",
]

# The keyword under which an arq job carries its producer's context (W3C trace context headers).
TRACE_KEY = "_trace"
ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
_OFF: AbstractContextManager[Any] = contextlib.nullcontext()


class _State:
    """The process's tracer once configured; OpenTelemetry's providers are process-wide too."""

    provider: TracerProvider | None = None
    tracer: Tracer | None = None


def enabled() -> bool:
    """Whether this process traces."""
    return _State.tracer is not None


def configure(service: str, *, exporter: SpanExporter | None = None) -> bool:
    """Start tracing when OTEL_EXPORTER_OTLP_ENDPOINT is set (or an exporter is given, in tests);
    whether the process traces. Call before engines and apps are built."""
    if _State.tracer is not None:
        return True
    if exporter is None and not os.environ.get(ENDPOINT):
        return False
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    # OTEL_SERVICE_NAME, when set, names the service instead.
    name = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": f"whoop-sync-{service}"}
    provider = TracerProvider(resource=Resource.create(name))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    _State.provider, _State.tracer = provider, provider.get_tracer("whoop-sync")
    return True


def instrument_app(app: FastAPI) -> None:
    """Server spans for every request of `app` (no-op when off)."""
    if _State.provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=_State.provider, excluded_urls="healthz,readyz,metrics"
    )


def instrument_engine(engine: AsyncEngine) -> None:
    """Client spans for every statement of `engine` (no-op when off)."""
    if _State.provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeter

    # The instrumentor's own entry point patches engine creation once per process, which an
    # async engine does not go through: the same per-engine tracer it builds, attached directly.
    usage = NoOpMeter("whoop-sync").create_up_down_counter("db.client.connections.usage")
    tracer = _State.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
    EngineTracer(tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]  # unannotated upstream


def shutdown() -> None:
    """Flush what is buffered and stop tracing (process exit, tests)."""
    provider, _State.provider, _State.tracer = _State.provider, None, None
    if provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    HTTPXClientInstrumentor().uninstrument()
    RedisInstrumentor().uninstrument()
    provider.shutdown()


def span(name: str, *, client: bool = False, **attributes: Any) -> AbstractContextManager[Any]:
    """A span of our own around a block (a CLIENT span for a call out); no-op when off."""
    if _State.tracer is None:
        return _OFF
    from opentelemetry.trace import SpanKind

    kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
    return _State.tracer.start_as_current_span(name, kind=kind, attributes=attributes)


def current() -> Context | None:
    """The caller's trace context, to carry to work done in another task (a batch, a sender);
    None when off or when no span is current."""
    if _State.tracer is None:
        return None
    from opentelemetry import context, trace

    if not trace.get_current_span().get_span_context().is_valid:
        return None
    return context.get_current()


def within(carried: Context | None) -> AbstractContextManager[Any]:
    """Run a block in a context `current` returned elsewhere; no-op for None."""
    if carried is None:
        return _OFF
    return _attached(carried)


@contextlib.contextmanager
def _attached(carried: Context) -> Iterator[None]:
    from opentelemetry import context

    token = context.attach(carried)
    try:
        yield
    finally:
        context.detach(token)


def _messaging(operation: str, system: str, job: str, message_id: str) -> dict[str, Any]:
    return {
        "messaging.system": system,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": job,
        "messaging.message.id": message_id,
    }


def producer(
    job: str, system: str, message_id: str, parent: Context | None = None
) -> AbstractContextManager[dict[str, str] | None]:
    """The PRODUCER span of an enqueue, under `parent` (from `current`) when given, else the
    current context; yields the context to carry with the job (None when off)."""
    if _State.tracer is None:
        return _OFF
    return _produce(_State.tracer, job, system, message_id, parent)


@contextlib.contextmanager
def _produce(
    tracer: Tracer, job: str, system: str, message_id: str, parent: Context | None
) -> Iterator[dict[str, str]]:
    from opentelemetry.propagate import inject
    from opentelemetry.trace import SpanKind

    attributes = _messaging("send", system, job, message_id)
    with tracer.start_as_current_span(
        f"send {job}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
    ):
        carrier: dict[str, str] = {}
        inject(carrier)
        yield carrier


def consumer(
    job: str, system: str, message_id: str, carrier: Mapping[str, str] | None, attempt: int
) -> AbstractContextManager[Any]:
    """The CONSUMER span of a job's run, a child of its producer's span; no-op when off."""
    if _State.tracer is None:
        return _OFF
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    attributes = _messaging("process", system, job, message_id)
    attributes["whoopsync.job.try"] = attempt
    return _State.tracer.start_as_current_span(
        f"process {job}",
        context=extract(dict(carrier or {})),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    )
