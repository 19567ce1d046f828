"""How one WHOOP call fails and retries: the retry policy and the mapping onto our errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from common.whoop.errors import (
    WhoopAuthError,
    WhoopClientError,
    WhoopError,
    WhoopNotFound,
    WhoopServerError,
    WhoopTransportError,
)

__all__ = ["RetryPolicy", "Retryable", "header", "status_error", "transport_error"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retries on 5xx and transport errors (count AND total time)."""

    attempts: int = 4
    total_seconds: float = 20.0
    backoff: float = 0.5
    max_backoff: float = 8.0

    def retrying(self, sleep: Callable[[float], Awaitable[None]], endpoint: str) -> AsyncRetrying:
        """A tenacity loop retrying `Retryable` within this policy's bounds."""
        # stop_before_delay (not stop_after_delay): never start a back-off that would end past the
        # total-time bound, so a caller's worst case is `total_seconds` plus one request timeout.
        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts) | stop_before_delay(self.total_seconds),
            wait=wait_random_exponential(multiplier=self.backoff, max=self.max_backoff),
            retry=retry_if_exception_type(Retryable),
            sleep=sleep,
            before_sleep=_log_retry(endpoint),
            reraise=True,
        )


class Retryable(Exception):
    """An attempt failed in a way worth another try; carries the public error."""

    def __init__(self, error: WhoopError) -> None:
        super().__init__(error.reason)
        self.error = error


def status_error(status: int) -> WhoopError:
    if status in (401, 403):
        return WhoopAuthError(f"WHOOP API returned {status}")
    if status == 404:
        return WhoopNotFound()
    if status >= 500:
        return WhoopServerError(status)
    return WhoopClientError(status)


def transport_error(exc: httpx.HTTPError) -> WhoopError:
    if isinstance(exc, httpx.TimeoutException):
        return WhoopTransportError("Connection timeout from WHOOP API")
    if isinstance(exc, httpx.ConnectError):
        return WhoopTransportError("Could not connect to WHOOP API")
    return WhoopTransportError(f"Connection error talking to WHOOP API ({type(exc).__name__})")


def header(response: httpx.Response, name: str) -> float | None:
    try:
        return float(response.headers[name])
    except (KeyError, ValueError):
        return None


def _log_retry(template: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "whoop.retrying",
            endpoint=template,
            attempt=state.attempt_number,
            reason=getattr(error, "args", [""])[0],
            wait=round(state.next_action.sleep if state.next_action else 0.0, 3),
        )

    return before_sleep
