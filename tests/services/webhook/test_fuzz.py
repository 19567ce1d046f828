"""hypothesis over the webhook's headers and body, on both backends: unsigned, wrongly signed and
correctly signed requests whose bodies are truncated, huge, not UTF-8, not JSON or of the wrong
types. Every answer is 400, 401 or 413 in the error form; nothing is recorded, enqueued or fetched."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import redis.asyncio as aioredis
import respx
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from common.db.models import WebhookEvent
from services.simulator.server import serve_app
from services.simulator.webhooks import signature
from services.webhook.app import MAX_BODY, PATH, create_app
from tests.common.sync.harness import CLIENT_SECRET, make_settings
from tests.fuzzing import CASES, fuzz_settings

EXAMPLES = 150  # per backend: a few seconds over a keep-alive connection

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
# The payload's fields with at least one of the wrong type (or missing): never WHOOP's shape.
WRONG_FIELD = st.sampled_from(["user_id", "id", "type", "trace_id"])


@st.composite
def misshapen_payload(draw: st.DrawFn) -> bytes:
    """A JSON object like WHOOP's payload with one field missing or of another type."""
    body: dict[str, Any] = {
        "user_id": draw(st.integers(1, 2**40)),
        "id": "7b5cbb51-7b1c-4b8e-9d8e-6d7f2b1e0a11",
        "type": "sleep.updated",
        "trace_id": f"fuzz-{draw(st.integers(0, 10**9))}",
    }
    field = draw(WRONG_FIELD)
    if draw(st.booleans()):
        del body[field]
    else:
        wrong = JSON_VALUES.filter(
            lambda v: not isinstance(v, int if field == "user_id" else str) or isinstance(v, bool)
        )
        body[field] = draw(wrong)
    return json.dumps(body).encode()


@st.composite
def truncated_payload(draw: st.DrawFn) -> bytes:
    """A valid payload cut short somewhere (never whole)."""
    whole = json.dumps(
        {"user_id": 10129, "id": "7b5cbb51", "type": "sleep.updated", "trace_id": "fuzz-t"}
    ).encode()
    return whole[: draw(st.integers(0, len(whole) - 1))]


BODIES = st.one_of(
    st.binary(max_size=512),  # mostly not UTF-8, never JSON
    st.text(max_size=200).map(str.encode),
    JSON_VALUES.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),
    misshapen_payload(),
    truncated_payload(),
    st.integers(MAX_BODY + 1, 4 * MAX_BODY).map(lambda n: b"{" + b" " * n + b"}"),  # huge
)
# What HTTP allows in a field value at all: visible ASCII, space, tab and obs-text (0x80-0xFF),
# which the receiver reads as Latin-1 ('²' is b'\\xb2'); never white space at either end, which
# HTTP strips (and a client refuses to send).
HEADER_BYTES = st.binary(max_size=40).map(
    lambda b: bytes(c for c in b if c == 9 or 32 <= c <= 126 or c >= 128).strip(b" \t")
)


class Request:
    """A generated request; its repr stays short (a body may be several times 64 KiB)."""

    def __init__(self, body: bytes, headers: dict[bytes, bytes]) -> None:
        self.body, self.headers = body, headers

    def __repr__(self) -> str:
        return f"Request(body={self.body[:60]!r}… {len(self.body)} bytes, headers={self.headers})"


@st.composite
def requests_(draw: st.DrawFn) -> Request:
    """A body and its headers: unsigned, wrongly signed, or signed right over a bad body."""
    body = draw(BODIES)
    headers: dict[bytes, bytes] = {b"content-type": b"application/json"}
    way = draw(st.sampled_from(["unsigned", "garbage", "wrong_secret", "stale", "signed"]))
    now_ms = str(int(time.time() * 1000))
    if way == "garbage":
        headers[b"x-whoop-signature-timestamp"] = draw(HEADER_BYTES)
        headers[b"x-whoop-signature"] = draw(HEADER_BYTES)
    elif way == "wrong_secret":
        headers[b"x-whoop-signature-timestamp"] = now_ms.encode()
        headers[b"x-whoop-signature"] = signature("not-the-secret", now_ms, body).encode()
    elif way == "stale":
        stale = str(int(now_ms) - draw(st.integers(301_000, 10**12)))
        headers[b"x-whoop-signature-timestamp"] = stale.encode()
        headers[b"x-whoop-signature"] = signature(CLIENT_SECRET, stale, body).encode()
    elif way == "signed":
        headers[b"x-whoop-signature-timestamp"] = now_ms.encode()
        headers[b"x-whoop-signature"] = signature(CLIENT_SECRET, now_ms, body).encode()
    return Request(body, headers)


def _fuzz(base_url: str) -> tuple[int, set[int]]:
    """Post every generated request; how many, and which statuses came back."""
    ran, statuses = 0, set[int]()

    @given(request=requests_())
    # Found by review: '²' passed str.isdigit() and crashed int() before authentication.
    @example(
        request=Request(
            b"{}", {b"x-whoop-signature-timestamp": b"\xb2", b"x-whoop-signature": b"x"}
        )
    )
    @fuzz_settings(EXAMPLES)
    def run(request: Request) -> None:
        nonlocal ran
        body, headers = request.body, request.headers
        response = http.post(PATH, content=body, headers=headers)
        ran += 1
        statuses.add(response.status_code)
        seen = (response.status_code, response.text[:200], request)
        assert response.status_code in (400, 401, 413), seen
        assert response.headers.get("content-type") == "application/json", seen
        error = response.json()
        assert error["status"] == "error"
        assert isinstance(error["error"]["code"], str)
        assert isinstance(error["error"]["message"], str)

    with httpx.Client(base_url=base_url, timeout=30) as http:
        run()
    return ran, statuses


async def _recorded(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count(WebhookEvent.id)))).scalar_one())


async def test_the_webhook_refuses_generated_bad_requests_and_records_nothing(
    backend: str,
    database_url: str,
    database_engine: AsyncEngine,
    redis_url: str,
    redis: aioredis.Redis,
) -> None:
    before = await _recorded(database_engine)
    settings = make_settings(database_url, redis_url, "http://whoop.test")
    async with serve_app(create_app(settings)) as base_url:
        with respx.mock(assert_all_called=False) as whoop:
            whoop.route(url__startswith=base_url).pass_through()  # the fuzzer's own requests
            anything = whoop.route().respond(599)  # any other HTTP call: WHOOP or elsewhere
            ran, statuses = await asyncio.to_thread(_fuzz, base_url)
    CASES[f"hypothesis webhook [{backend}]"] += ran
    assert ran == EXAMPLES + 1  # the generated cases and the explicit one
    assert statuses == {400, 401, 413}  # every kind of refusal was reached
    assert await _recorded(database_engine) == before
    assert await redis.zcard("arq:queue") == 0
    assert anything.call_count == 0  # nothing was fetched from WHOOP
