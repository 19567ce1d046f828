"""Traces (SPEC §3.4): with tracing on, one trace follows a webhook from its receipt through its
job, the WHOOP call and the row's write to its push, the queue hop as PRODUCER and CONSUMER spans
whose context travels with the job (through Redis under arq, in memory in the embedded runner);
with tracing off, no part of OpenTelemetry's SDK, exporters or instrumentations is even imported
(FastAPI itself imports the API, whose calls are no-ops without a provider)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr

from common import tracing
from tests.common.feed.receiver import Receiver, serve_receiver
from tests.services.commands.test_serve import Served, eventually, running_serve

ROOT = Path(__file__).resolve().parents[2]
WHSEC = "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the test, into memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    assert tracing.configure("test", exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """The app's backend."""
    async with serve_receiver() as running:
        yield running


@pytest.fixture
async def traced(
    spans: InMemorySpanExporter,
    receiver: Receiver,
    backend: str,
    pg_url: str,
    redis_url: str,
    redis: Any,
    tmp_path: Path,
) -> AsyncIterator[Served]:
    """serve, traced, pushing to the receiver: in-process jobs on SQLite, arq on PostgreSQL."""
    if backend == "sqlite":
        url, queue_url = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}", None
    else:
        url, queue_url = pg_url, redis_url
    push = {"app_webhook_url": receiver.url, "app_webhook_secret": SecretStr(WHSEC)}
    async with running_serve(url, queue_url, **push) as served:
        yield served


def _chain(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    """The span and its ancestors, innermost first."""
    chain = [span]
    while chain[-1].parent is not None and chain[-1].parent.span_id in by_id:
        chain.append(by_id[chain[-1].parent.span_id])
    return chain


def _parent(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def _named(chain: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in chain if s.name == name]
    assert found, f"{name} not among {[s.name for s in chain]}"
    return found[0]


async def test_one_trace_from_webhook_to_push(
    traced: Served, spans: InMemorySpanExporter, receiver: Receiver
) -> None:
    auth = await traced.connect(10002)

    async def backfill_pushed() -> bool:
        # A user's pushes go out from one sender at a time: once the backfill's are all out, the
        # workout's push is sent in the trace of the webhook whose job woke the sender.
        if not any(s.name == "process backfill_user" for s in spans.get_finished_spans()):
            return False
        feed = await traced.http.get(f"{traced.base}/api/v1/smart/changes?limit=500", headers=auth)
        # By cursor: the run's database may hold other tests' pending pushes, sent here too.
        received = {json.loads(p.body)["cursor"] for p in receiver.ok()}
        return {c["cursor"] for c in feed.json()["changes"]} <= received

    await eventually(backfill_pushed, 60)
    step = await traced.http.post(
        f"{traced.sim.base_url}/_sim/scenario/step", json={"user_id": 10002, "action": "workout"}
    )
    workout = next(c["id"] for c in step.json()["outcomes"][0]["changed"] if c["kind"] == "workout")
    pushed: list[ReadableSpan] = []

    def webhook_pushes() -> list[ReadableSpan]:
        finished = spans.get_finished_spans()
        by_id = {s.context.span_id: s for s in finished}
        return [
            s
            for s in finished
            if s.name == "push workout.upserted"
            and "POST /webhooks/whoop" in {a.name for a in _chain(s, by_id)}
        ]

    async def workout_pushed() -> bool:
        pushed[:] = webhook_pushes()
        return bool(pushed) and any(workout.encode() in p.body for p in receiver.ok())

    await eventually(workout_pushed, 60)
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    chain = _chain(pushed[0], by_id)
    receipt = _named(chain, "POST /webhooks/whoop")  # under the simulator's own POST's span
    assert receipt.kind is SpanKind.SERVER
    assert {s.context.trace_id for s in chain} == {receipt.context.trace_id}
    # Parent by parent: the receipt enqueues (in a batch, under its own request), the job runs
    # under that enqueue, and the drain after the job's commit wakes the sender that pushes.
    assert [s.name for s in chain[: chain.index(receipt) + 1]] == [
        "push workout.upserted",
        "process process_webhook_event",
        "send process_webhook_event",
        "POST /webhooks/whoop",
    ]
    push, processed, sent = chain[:3]
    assert (push.kind, processed.kind, sent.kind) == (
        SpanKind.CLIENT,
        SpanKind.CONSUMER,
        SpanKind.PRODUCER,
    )
    assert sent.attributes is not None
    assert sent.attributes["messaging.operation.type"] == "send"
    # Under the event's job: the WHOOP call (and httpx's span of it) and the row's write.
    under_job = [s for s in finished if processed in _chain(s, by_id)[1:]]
    names = {s.name for s in under_job}
    assert "WHOOP GET /v2/activity/workout/{id}" in names
    assert "upsert workout" in names
    writes = [
        s for s in under_job if "whoop_workout" in str((s.attributes or {}).get("db.statement"))
    ]
    assert any("INSERT" in str((s.attributes or {}).get("db.statement")) for s in writes)
    # And the push's POST itself, by httpx's instrumentation.
    assert any(
        s.kind is SpanKind.CLIENT and _parent(s) == pushed[0].context.span_id for s in finished
    )


def test_tracing_off_imports_no_sdk_exporter_or_instrumentation() -> None:
    code = (
        "import sys\n"
        "PARTS = ('opentelemetry.sdk', 'opentelemetry.exporter', 'opentelemetry.instrumentation')\n"
        "from cryptography.fernet import Fernet\n"
        "from common.config import Settings\n"
        "from services.commands.serve import create_app\n"
        "from services.worker.jobs import functions\n"
        "create_app(Settings(whoop_client_id='c', whoop_client_secret='s', jwt_secret='j' * 32,\n"
        "    whoop_redirect_uri='http://x/cb', token_encryption_key=Fernet.generate_key().decode()))\n"
        "functions()\n"
        "print(sorted(m for m in sys.modules if m.startswith(PARTS)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "WHOOPSYNC_"))}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
