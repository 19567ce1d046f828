"""Errors of the WHOOP client: the only exceptions that leave `common/whoop/`.

No httpx exception escapes the package; every failure is one of these, each carrying a readable
`.reason` that the read API serves as the `error` field of a stale answer.

Our exception hierarchy:

* WhoopError
  + WhoopAuthError - 401/403 after the one refresh and retry.
  | + WhoopReauthorizationRequired - the refresh was refused (invalid_grant) or no refresh token.
  + WhoopNotFound - 404: the record does not exist (or not for this user).
  + WhoopRateLimited - 429 whose reset lies beyond the caller's wait budget (`.reset_after`).
  | + WhoopShareSpent - the app user's own share of the budget is spent; no call was made.
  + WhoopServerError - 5xx still failing after the bounded retries (`.status`).
  + WhoopClientError - any other 4xx (`.status`).
  + WhoopTransportError - timeouts and connection errors still failing after the retries.
"""

from __future__ import annotations

__all__ = [
    "WhoopAuthError",
    "WhoopClientError",
    "WhoopError",
    "WhoopNotFound",
    "WhoopRateLimited",
    "WhoopReauthorizationRequired",
    "WhoopServerError",
    "WhoopShareSpent",
    "WhoopTransportError",
]


class WhoopError(Exception):
    """Base of every WHOOP client failure; `.reason` is one readable line for API answers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WhoopAuthError(WhoopError):
    """WHOOP refused the access token, even after one refresh and retry."""

    def __init__(self, reason: str = "WHOOP API rejected the access token") -> None:
        super().__init__(reason)


class WhoopReauthorizationRequired(WhoopAuthError):
    """The refresh token was refused or is missing: the user must connect WHOOP again."""

    def __init__(self, reason: str = "WHOOP authorization expired; reconnect required") -> None:
        super().__init__(reason)


class WhoopNotFound(WhoopError):
    """WHOOP answered 404 for the requested record."""

    def __init__(self, reason: str = "WHOOP API returned 404") -> None:
        super().__init__(reason)


class WhoopRateLimited(WhoopError):
    """WHOOP's budget is spent for longer than the caller may wait; retry after `reset_after` s."""

    def __init__(self, reset_after: float, reason: str | None = None) -> None:
        super().__init__(reason or f"WHOOP API rate limit reached; retry in {reset_after:.0f}s")
        self.reset_after = reset_after


class WhoopBudgetWait(WhoopRateLimited):
    """The app's own WHOOP budget has no slot within the caller's wait (another caller's calls
    spent it, or WHOOP's last 429 blocks it): the call was not made, WHOOP did not fail."""


class WhoopShareSpent(WhoopRateLimited):
    """The app user's share of the budget for reads (SPEC 3.1) is spent; a slot frees in
    `reset_after` s. Raised before the call, which was not made."""

    def __init__(self, reset_after: float) -> None:
        super().__init__(
            reset_after,
            f"The refresh limit of this user was reached; retry in {max(1, round(reset_after))}s",
        )


class WhoopServerError(WhoopError):
    """WHOOP answered 5xx on every attempt."""

    def __init__(self, status: int, reason: str | None = None) -> None:
        super().__init__(reason or f"WHOOP API returned {status}")
        self.status = status


class WhoopClientError(WhoopError):
    """WHOOP answered a 4xx other than 401/403/404/429 (our request was wrong)."""

    def __init__(self, status: int, reason: str | None = None) -> None:
        super().__init__(reason or f"WHOOP API returned {status}")
        self.status = status


class WhoopTransportError(WhoopError):
    """WHOOP could not be reached (timeout, connection refused or reset) on every attempt."""

    def __init__(self, reason: str = "Connection error talking to WHOOP API") -> None:
        super().__init__(reason)
