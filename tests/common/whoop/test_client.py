"""WhoopClient against WHOOP mocked with respx (samples validated against the OpenAPI document)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx

from common.metrics import WHOOP_CALLS, WHOOP_RATE_LIMITED
from common.ratelimit import LocalRateLimiter, Priority
from common.types import DataType
from common.whoop.client import UserClient, WhoopClient
from common.whoop.errors import (
    WhoopAuthError,
    WhoopClientError,
    WhoopNotFound,
    WhoopRateLimited,
    WhoopServerError,
    WhoopTransportError,
)
from common.whoop.models import BasicProfile, BodyMeasurement, Cycle, Recovery, Sleep, Workout
from common.whoop.retry import RetryPolicy
from tests.common.whoop import fakes
from tests.common.whoop.fakes import BASE, NOW, FakeClock, StaticTokens


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> LocalRateLimiter:
    return LocalRateLimiter(100, 10_000, clock=clock, sleep=clock.sleep)


@pytest.fixture
def whoop(http: httpx.AsyncClient, limiter: LocalRateLimiter, clock: FakeClock) -> WhoopClient:
    return WhoopClient(http, BASE, limiter, sleep=clock.sleep)


@pytest.fixture
def tokens() -> StaticTokens:
    return StaticTokens("access-1", "access-2")


@pytest.fixture
def user(whoop: WhoopClient, tokens: StaticTokens) -> UserClient:
    return whoop.for_user(tokens)


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def _bearer(route: respx.Route, index: int = -1) -> str:
    return str(route.calls[index].request.headers["Authorization"])


async def test_fetches_a_cycle_by_id(user: UserClient, mock: respx.MockRouter) -> None:
    obj = fakes.cycle(cycle_id=777)
    route = mock.get("/v2/cycle/777").respond(200, json=obj)
    result = await user.fetch(DataType.CYCLE, 777)
    assert isinstance(result, Cycle)
    assert result.id == 777
    assert result.raw == obj
    assert _bearer(route) == "Bearer access-1"


@pytest.mark.parametrize(
    ("data_type", "path", "model", "sample"),
    [
        (DataType.SLEEP, "/v2/activity/sleep/{}", Sleep, fakes.sleep),
        (DataType.WORKOUT, "/v2/activity/workout/{}", Workout, fakes.workout),
    ],
)
async def test_fetches_uuid_records_by_id(
    user: UserClient,
    mock: respx.MockRouter,
    data_type: DataType,
    path: str,
    model: type[Any],
    sample: Any,
) -> None:
    obj = sample()
    mock.get(path.format(obj["id"])).respond(200, json=obj)
    result = await user.fetch(data_type, uuid.UUID(obj["id"]))
    assert isinstance(result, model)
    assert result.raw == obj


async def test_fetches_a_recovery_through_its_cycle(
    user: UserClient, mock: respx.MockRouter
) -> None:
    obj = fakes.recovery(cycle_id=55)
    mock.get("/v2/cycle/55/recovery").respond(200, json=obj)
    assert (await user.cycle_recovery(55)).raw == obj
    assert isinstance(await user.fetch(DataType.RECOVERY, 55), Recovery)


async def test_fetches_the_sleep_of_a_cycle(user: UserClient, mock: respx.MockRouter) -> None:
    obj = fakes.sleep()
    mock.get("/v2/cycle/93845/sleep").respond(200, json=obj)
    result = await user.cycle_sleep(93845)
    assert result.id == uuid.UUID(obj["id"])
    assert result.cycle_id == 93845


async def test_reads_profile_and_body_measurement(user: UserClient, mock: respx.MockRouter) -> None:
    mock.get("/v2/user/profile/basic").respond(200, json=fakes.profile(4242))
    mock.get("/v2/user/measurement/body").respond(200, json=fakes.body_measurement())
    profile = await user.profile()
    body = await user.body_measurement()
    assert isinstance(profile, BasicProfile)
    assert profile.user_id == 4242
    assert isinstance(body, BodyMeasurement)
    assert body.max_heart_rate == 200


async def test_revokes_access(user: UserClient, mock: respx.MockRouter) -> None:
    route = mock.delete("/v2/user/access").respond(204)
    await user.revoke_access()
    assert route.call_count == 1
    assert _bearer(route) == "Bearer access-1"


@pytest.mark.parametrize(
    ("data_type", "path", "schema", "sample"),
    [
        (DataType.CYCLE, "/v2/cycle", "PaginatedCycleResponse", lambda i: fakes.cycle(i)),
        (DataType.SLEEP, "/v2/activity/sleep", "PaginatedSleepResponse", lambda i: fakes.sleep()),
        (DataType.WORKOUT, "/v2/activity/workout", "WorkoutCollection", lambda i: fakes.workout()),
        (DataType.RECOVERY, "/v2/recovery", "RecoveryCollection", lambda i: fakes.recovery(i)),
    ],
)
async def test_collection_walks_every_page(
    user: UserClient,
    mock: respx.MockRouter,
    data_type: DataType,
    path: str,
    schema: str,
    sample: Any,
) -> None:
    first = [sample(i) for i in range(25)]
    second = [sample(100 + i) for i in range(3)]
    route = mock.get(path).mock(
        side_effect=[
            httpx.Response(200, json=fakes.page(first, schema, next_token="tok-2")),
            httpx.Response(200, json=fakes.page(second, schema)),
        ]
    )
    start, end = NOW - timedelta(days=30), NOW
    records = [r async for r in user.collection(data_type, start=start, end=end)]
    assert [r.raw for r in records] == first + second
    first_query = route.calls[0].request.url.params
    assert first_query["limit"] == "25"
    assert first_query["start"] == "2025-01-30T12:00:00.000Z"
    assert first_query["end"] == "2025-03-01T12:00:00.000Z"
    assert "nextToken" not in first_query
    assert route.calls[1].request.url.params["nextToken"] == "tok-2"


async def test_collection_ends_on_a_last_page_whose_next_token_is_null(
    user: UserClient, mock: respx.MockRouter
) -> None:
    """WHOOP may end a collection with `"next_token": null` as well as without the key."""
    schema = "PaginatedCycleResponse"
    last = fakes.page([fakes.cycle(i) for i in range(3)], schema) | {"next_token": None}
    route = mock.get("/v2/cycle").mock(
        side_effect=[
            httpx.Response(200, json=fakes.page([fakes.cycle(i) for i in range(25)], schema, "t2")),
            httpx.Response(200, json=last),
        ]
    )
    records = [r async for r in user.collection(DataType.CYCLE)]
    assert len(records) == 28
    assert route.call_count == 2


async def test_collection_limit_sizes_the_last_page_and_stops(
    user: UserClient, mock: respx.MockRouter
) -> None:
    schema = "PaginatedCycleResponse"
    route = mock.get("/v2/cycle").mock(
        side_effect=[
            httpx.Response(200, json=fakes.page([fakes.cycle(i) for i in range(25)], schema, "t2")),
            httpx.Response(200, json=fakes.page([fakes.cycle(i) for i in range(5)], schema, "t3")),
        ]
    )
    records = [r async for r in user.collection(DataType.CYCLE, limit=30)]
    assert len(records) == 30
    assert [c.request.url.params["limit"] for c in route.calls] == ["25", "5"]


async def test_collection_limit_below_a_page_makes_one_call(
    user: UserClient, mock: respx.MockRouter
) -> None:
    body = fakes.page([fakes.cycle(i) for i in range(3)], "PaginatedCycleResponse", "more")
    route = mock.get("/v2/cycle").respond(200, json=body)
    records = [r async for r in user.collection(DataType.CYCLE, limit=3)]
    assert len(records) == 3
    assert route.call_count == 1
    assert route.calls[0].request.url.params["limit"] == "3"


async def test_models_keep_fields_whoop_adds_later(
    user: UserClient, mock: respx.MockRouter
) -> None:
    obj = {**fakes.cycle(), "brand_new_field": {"x": 1}}
    mock.get("/v2/cycle/93845").respond(200, json=obj)
    result = await user.fetch(DataType.CYCLE, 93845)
    assert result.raw == obj
    assert result.model_extra == {"brand_new_field": {"x": 1}}


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [
        (400, WhoopClientError, "WHOOP API returned 400"),
        (403, WhoopAuthError, "WHOOP API returned 403"),
        (404, WhoopNotFound, "WHOOP API returned 404"),
        (422, WhoopClientError, "WHOOP API returned 422"),
        (503, WhoopServerError, "WHOOP API returned 503"),
    ],
)
async def test_http_failures_map_to_errors(
    user: UserClient, mock: respx.MockRouter, status: int, error: type[Exception], reason: str
) -> None:
    mock.get("/v2/cycle/1").respond(status)
    with pytest.raises(error) as caught:
        await user.fetch(DataType.CYCLE, 1)
    assert getattr(caught.value, "reason", None) == reason


async def test_timeout_maps_to_transport_error_after_retries(
    user: UserClient, mock: respx.MockRouter
) -> None:
    route = mock.get("/v2/cycle/1").mock(side_effect=httpx.ConnectTimeout("slow"))
    before = WHOOP_CALLS.labels("/v2/cycle/{id}", "error")._value.get()
    with pytest.raises(WhoopTransportError) as caught:
        await user.fetch(DataType.CYCLE, 1)
    assert caught.value.reason == "Connection timeout from WHOOP API"
    assert route.call_count == 4
    assert WHOOP_CALLS.labels("/v2/cycle/{id}", "error")._value.get() == before + 4


async def test_connection_refused_maps_to_transport_error(
    user: UserClient, mock: respx.MockRouter
) -> None:
    mock.get("/v2/cycle/1").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(WhoopTransportError, match="Could not connect to WHOOP API"):
        await user.fetch(DataType.CYCLE, 1)


async def test_malformed_body_is_a_server_error(user: UserClient, mock: respx.MockRouter) -> None:
    mock.get("/v2/cycle/1").respond(200, json={"id": "not a cycle"})
    with pytest.raises(WhoopServerError, match="malformed Cycle"):
        await user.fetch(DataType.CYCLE, 1)


async def test_retries_5xx_then_succeeds(
    user: UserClient, mock: respx.MockRouter, clock: FakeClock
) -> None:
    route = mock.get("/v2/cycle/1").mock(
        side_effect=[
            httpx.Response(502),
            httpx.Response(503),
            httpx.Response(200, json=fakes.cycle(1)),
        ]
    )
    assert (await user.fetch(DataType.CYCLE, 1)).id == 1
    assert route.call_count == 3
    assert len(clock.slept) == 2


async def test_retry_count_and_backoff_are_bounded(
    user: UserClient, mock: respx.MockRouter, clock: FakeClock
) -> None:
    route = mock.get("/v2/cycle/1").respond(500)
    with pytest.raises(WhoopServerError):
        await user.fetch(DataType.CYCLE, 1)
    assert route.call_count == 4  # RetryPolicy.attempts
    # Full jitter: each wait is uniform in [0, min(max_backoff, 0.5 * 2**n)].
    assert len(clock.slept) == 3
    assert all(0 <= wait <= bound for wait, bound in zip(clock.slept, [1, 2, 4], strict=True))


async def test_retry_total_time_is_bounded(
    http: httpx.AsyncClient, mock: respx.MockRouter, limiter: LocalRateLimiter
) -> None:
    policy = RetryPolicy(attempts=1000, total_seconds=0.3, backoff=0.02, max_backoff=0.05)
    user = WhoopClient(http, BASE, limiter, retry=policy).for_user(StaticTokens("a"))
    route = mock.get("/v2/cycle/1").respond(503)
    started = time.monotonic()
    with pytest.raises(WhoopServerError):
        await user.fetch(DataType.CYCLE, 1)
    # Unbounded, 1000 attempts would take ~35 s; the slack is for a loaded CI machine.
    assert time.monotonic() - started < 2.0
    assert 2 <= route.call_count < 1000


async def test_401_refreshes_once_and_retries(
    user: UserClient, mock: respx.MockRouter, tokens: StaticTokens
) -> None:
    route = mock.get("/v2/user/profile/basic").mock(
        side_effect=[httpx.Response(401), httpx.Response(200, json=fakes.profile())]
    )
    assert (await user.profile()).user_id == 10129
    assert tokens.refreshes == ["access-1"]
    assert _bearer(route, 1) == "Bearer access-2"


async def test_second_401_is_an_auth_error(
    user: UserClient, mock: respx.MockRouter, tokens: StaticTokens
) -> None:
    route = mock.get("/v2/user/profile/basic").respond(401)
    with pytest.raises(WhoopAuthError):
        await user.profile()
    assert route.call_count == 2
    assert tokens.refreshes == ["access-1"]


async def test_429_waits_for_the_reset_then_succeeds(
    user: UserClient, mock: respx.MockRouter, clock: FakeClock
) -> None:
    limited = httpx.Response(429, headers={"X-RateLimit-Reset": "3", "X-RateLimit-Remaining": "0"})
    route = mock.get("/v2/cycle/1").mock(
        side_effect=[limited, httpx.Response(200, json=fakes.cycle(1))]
    )
    before, started = WHOOP_RATE_LIMITED._value.get(), clock.now
    assert (await user.fetch(DataType.CYCLE, 1)).id == 1
    assert route.call_count == 2
    assert clock.now - started >= 3
    assert WHOOP_RATE_LIMITED._value.get() == before + 1


async def test_429_past_the_wait_budget_raises_and_blocks_everyone(
    whoop: WhoopClient, mock: respx.MockRouter, limiter: LocalRateLimiter
) -> None:
    user = whoop.for_user(StaticTokens("a"), Priority.INTERACTIVE)
    route = mock.get("/v2/cycle/1").respond(429, headers={"X-RateLimit-Reset": "40"})
    with pytest.raises(WhoopRateLimited) as caught:
        await user.fetch(DataType.CYCLE, 1)
    assert caught.value.reset_after == 40
    assert route.call_count == 1
    with pytest.raises(WhoopRateLimited):  # the app-wide block holds for other callers too
        await limiter.acquire(Priority.INTERACTIVE)


async def test_remaining_zero_blocks_until_the_reset(
    user: UserClient, mock: respx.MockRouter, clock: FakeClock
) -> None:
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "7", "X-RateLimit-Limit": "100"}
    mock.get("/v2/cycle/1").respond(200, json=fakes.cycle(1), headers=headers)
    await user.fetch(DataType.CYCLE, 1)
    started = clock.now
    await user.fetch(DataType.CYCLE, 1)
    assert clock.now - started == pytest.approx(7)
