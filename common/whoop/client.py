"""The WHOOP API client: one generic path over an injected `httpx.AsyncClient`.

`WhoopClient` is app-wide (created in a lifespan / on_startup next to the httpx client and the rate
limiter); `client.for_user(tokens, priority)` gives a `UserClient` for one connection. Every call:

1. takes a slot from the app-wide budget (`limiter.acquire(priority)`) and reports WHOOP's
   X-RateLimit-* headers back (`limiter.observe`);
2. retries 5xx answers and transport errors with exponential back-off and full jitter, bounded in
   attempts and in total time (tenacity);
3. on a 429, blocks the whole app until X-RateLimit-Reset and waits for it if that fits the
   priority's wait budget, else raises `WhoopRateLimited(reset_after)`;
4. on a 401, asks the token source for a refresh once and retries once; a second 401 is
   `WhoopAuthError`.

Only `common.whoop.errors` exceptions leave this module.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, overload

import httpx
import structlog
from pydantic import ValidationError

from common.metrics import WHOOP_CALLS, WHOOP_RATE_LIMITED
from common.ratelimit import DEFAULT_MAX_WAIT, Priority, RateLimiter, wait_budgets
from common.types import DataType
from common.whoop.errors import (
    WhoopRateLimited,
    WhoopServerError,
)
from common.whoop.models import (
    BasicProfile,
    BodyMeasurement,
    Cycle,
    Recovery,
    Sleep,
    WhoopModel,
    Workout,
)
from common.whoop.resources import PAGE_SIZE, RESOURCES, Resource
from common.whoop.retry import Retryable, RetryPolicy, header, status_error, transport_error

if TYPE_CHECKING:
    from common.config import Settings

__all__ = [
    "PAGE_SIZE",
    "RESOURCES",
    "Resource",
    "RetryPolicy",
    "TokenSource",
    "UserClient",
    "WhoopClient",
]

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=WhoopModel)
# Awaited before each call made for an app user's read: takes one call of their share.
Charge = Callable[[], Awaitable[None]]
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_RATE_LIMITED_ROUNDS = 3
DEFAULT_RETRY = RetryPolicy()


class TokenSource(Protocol):
    """The access token of one connection, and its refresh after WHOOP rejected it."""

    async def access_token(self) -> str:
        """A token believed valid (refreshed ahead of expiry)."""
        ...

    async def refresh(self, rejected: str) -> str:
        """A new token after WHOOP rejected `rejected` (or another caller's newer one)."""
        ...


class WhoopClient:
    """App-wide WHOOP API client: budget, retries, error mapping, metrics."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        limiter: RateLimiter,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        wait_budget: Mapping[Priority, float] = DEFAULT_MAX_WAIT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.http, self.base_url, self.limiter = http, base_url.rstrip("/"), limiter
        self.timeout, self.retry, self.wait_budget = timeout, retry, wait_budgets(wait_budget)
        self._sleep = sleep

    @classmethod
    def from_settings(
        cls, http: httpx.AsyncClient, settings: Settings, limiter: RateLimiter
    ) -> WhoopClient:
        """The client for the configured WHOOP base URL."""
        return cls(http, settings.whoop_api_base_url, limiter)

    def for_user(
        self,
        tokens: TokenSource,
        priority: Priority = Priority.BACKGROUND,
        charge: Charge | None = None,
    ) -> UserClient:
        """Calls on behalf of one connection, at one priority; `charge` is awaited before each
        call (an app user's share of the budget) and may raise WhoopShareSpent."""
        return UserClient(self, tokens, priority, charge)

    async def request(
        self,
        tokens: TokenSource,
        priority: Priority,
        method: str,
        template: str,
        params: Mapping[str, Any] | None = None,
        *,
        charge: Charge | None = None,
        **path: Any,
    ) -> httpx.Response:
        """One successful (2xx) answer, or the WhoopError that explains why not."""
        url = self.base_url + template.format(**path)
        call = _Call(method, url, template, params, priority, charge)
        token = await tokens.access_token()
        response = await self._send(call, token)
        if response.status_code == 401:
            log.info("whoop.token_rejected", endpoint=template)
            token = await tokens.refresh(token)
            response = await self._send(call, token)
        if response.is_success:
            return response
        raise status_error(response.status_code)

    async def _send(self, call: _Call, token: str) -> httpx.Response:
        """Retried attempts; a 429 blocks the app until the reset and waits within the budget."""
        waited, reset = 0.0, 60.0
        for _ in range(MAX_RATE_LIMITED_ROUNDS):
            response = await self._retried(call, token)
            if response.status_code != 429:
                return response
            reset_header = header(response, "X-RateLimit-Reset")
            reset = 60.0 if reset_header is None else max(reset_header, 0.0)
            WHOOP_RATE_LIMITED.inc()
            log.warning("whoop.rate_limited", endpoint=call.template, reset_after=reset)
            await self.limiter.block_for(reset)
            if waited + reset > self.wait_budget[call.priority]:
                raise WhoopRateLimited(reset)
            waited += reset  # the next acquire() sleeps until the block lifts
        raise WhoopRateLimited(reset)

    async def _retried(self, call: _Call, token: str) -> httpx.Response:
        try:
            async for attempt in self.retry.retrying(self._sleep, call.template):
                with attempt:
                    return await self._attempt(call, token)
        except Retryable as exc:
            raise exc.error from None
        raise AssertionError("tenacity ended without an outcome")  # pragma: no cover

    async def _attempt(self, call: _Call, token: str) -> httpx.Response:
        if call.charge is not None:
            await call.charge()
        await self.limiter.acquire(call.priority, max_wait=self.wait_budget[call.priority])
        started = time.perf_counter()
        try:
            response = await self.http.request(
                call.method,
                call.url,
                params=call.params,
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            WHOOP_CALLS.labels(call.template, "error").inc()
            raise Retryable(transport_error(exc)) from None
        WHOOP_CALLS.labels(call.template, str(response.status_code)).inc()
        log.debug(
            "whoop.called",
            endpoint=call.template,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        remaining = header(response, "X-RateLimit-Remaining")
        await self.limiter.observe(
            None if remaining is None else int(remaining), header(response, "X-RateLimit-Reset")
        )
        if response.status_code >= 500:
            raise Retryable(WhoopServerError(response.status_code))
        return response


@dataclass(frozen=True)
class _Call:
    """One WHOOP request: what to send, under which endpoint template, at which priority."""

    method: str
    url: str
    template: str
    params: Mapping[str, Any] | None
    priority: Priority
    charge: Charge | None = None


class UserClient:
    """WHOOP calls on behalf of one connection, each returning a typed model."""

    def __init__(
        self,
        client: WhoopClient,
        tokens: TokenSource,
        priority: Priority,
        charge: Charge | None = None,
    ) -> None:
        self.client, self.tokens, self.priority = client, tokens, priority
        self.charge = charge

    @overload
    async def fetch(self, data_type: Literal[DataType.CYCLE], key: int) -> Cycle: ...
    @overload
    async def fetch(self, data_type: Literal[DataType.SLEEP], key: uuid.UUID | str) -> Sleep: ...
    @overload
    async def fetch(
        self, data_type: Literal[DataType.WORKOUT], key: uuid.UUID | str
    ) -> Workout: ...
    @overload
    async def fetch(self, data_type: Literal[DataType.RECOVERY], key: int) -> Recovery: ...
    @overload
    async def fetch(self, data_type: DataType, key: Any) -> WhoopModel: ...
    async def fetch(self, data_type: DataType, key: Any) -> WhoopModel:
        """One record by id (a recovery by its cycle id); WhoopNotFound if WHOOP has none."""
        resource = RESOURCES[data_type]
        assert resource.by_id is not None
        return await self._get(resource.by_id, resource.model, id=key)

    async def cycle_recovery(self, cycle_id: int) -> Recovery:
        """The recovery of a cycle."""
        return await self._get("/v2/cycle/{id}/recovery", Recovery, id=cycle_id)

    async def cycle_sleep(self, cycle_id: int) -> Sleep:
        """The sleep of a cycle."""
        return await self._get("/v2/cycle/{id}/sleep", Sleep, id=cycle_id)

    async def profile(self) -> BasicProfile:
        """The user's basic profile (carries WHOOP's `user_id`)."""
        return await self._get("/v2/user/profile/basic", BasicProfile)

    async def body_measurement(self) -> BodyMeasurement:
        """The user's body measurements."""
        return await self._get("/v2/user/measurement/body", BodyMeasurement)

    async def revoke_access(self) -> None:
        """Revoke the app's access at WHOOP (ends webhooks for this user too)."""
        await self.client.request(self.tokens, self.priority, "DELETE", "/v2/user/access")

    async def collection(
        self,
        data_type: DataType,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[WhoopModel]:
        """Every record in [start, end), newest first, page by page; at most `limit` of them."""
        resource, next_token, seen = RESOURCES[data_type], None, 0
        while limit is None or seen < limit:
            size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - seen)
            params: dict[str, Any] = {"limit": size}
            params |= {k: _iso(v) for k, v in (("start", start), ("end", end)) if v is not None}
            if next_token:
                params["nextToken"] = next_token
            body = await self._json(resource.collection, params)
            records = body.get("records") or []
            for record in records[: None if limit is None else limit - seen]:
                yield _parse(resource.model, record, resource.collection)
                seen += 1
            next_token = body.get("next_token")
            if not next_token or not records:
                return

    async def _get(self, template: str, model: type[M], **path: Any) -> M:
        return _parse(model, await self._json(template, None, **path), template)

    async def _json(
        self, template: str, params: Mapping[str, Any] | None, **path: Any
    ) -> dict[str, Any]:
        response = await self.client.request(
            self.tokens, self.priority, "GET", template, params, charge=self.charge, **path
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise WhoopServerError(response.status_code, "WHOOP API returned a malformed body")
        return body


def _parse(model: type[M], obj: Any, template: str) -> M:
    try:
        return model.model_validate(obj)
    except ValidationError:
        log.warning("whoop.malformed", endpoint=template, model=model.__name__)
        raise WhoopServerError(200, f"WHOOP API returned a malformed {model.__name__}") from None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
