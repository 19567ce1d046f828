"""WHOOP's OAuth 2.0 authorization-code flow: authorize URL, code exchange, token refresh.

Every refresh ROTATES the refresh token: the answer carries a new one and the old one dies. The
caller must store the new one before using the new access token (see `common/sync/tokens.py`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx
import structlog

from common.whoop.errors import (
    WhoopAuthError,
    WhoopClientError,
    WhoopError,
    WhoopReauthorizationRequired,
    WhoopServerError,
    WhoopTransportError,
)

if TYPE_CHECKING:
    from common.config import Settings

__all__ = ["READ_SCOPES", "SCOPES", "OAuthClient", "TokenSet", "new_state"]

log = structlog.get_logger(__name__)

READ_SCOPES = (
    "read:recovery",
    "read:cycles",
    "read:workout",
    "read:sleep",
    "read:profile",
    "read:body_measurement",
)
SCOPES = (*READ_SCOPES, "offline")  # `offline` is what makes WHOOP hand out a refresh token
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def new_state() -> str:
    """A fresh 8-character, URL-safe, unguessable OAuth `state`."""
    return secrets.token_urlsafe(6)


@dataclass(frozen=True)
class TokenSet:
    """What WHOOP's token endpoint hands out."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime
    scope: str

    def __repr__(self) -> str:
        return f"TokenSet(expires_at={self.expires_at.isoformat()}, scope={self.scope!r})"


class OAuthClient:
    """The OAuth endpoints of one WHOOP app, over an injected httpx client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.http, self.base_url = http, base_url.rstrip("/")
        self.client_id, self._secret, self.redirect_uri = client_id, client_secret, redirect_uri
        self.timeout = timeout

    @classmethod
    def from_settings(cls, http: httpx.AsyncClient, settings: Settings) -> OAuthClient:
        """The app's OAuth client; ConfigError if the client id, secret or redirect URI is unset."""
        settings.require("whoop_client_id", "whoop_client_secret", "whoop_redirect_uri")
        assert settings.whoop_client_secret is not None  # checked by require()
        return cls(
            http,
            settings.whoop_oauth_base_url,
            str(settings.whoop_client_id),
            settings.whoop_client_secret.get_secret_value(),
            str(settings.whoop_redirect_uri),
        )

    def authorization_url(self, state: str) -> str:
        """WHOOP's authorize URL asking for every read scope plus `offline`."""
        query = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": " ".join(SCOPES),
            "state": state,
        }
        return f"{self.base_url}/auth?{urlencode(query, quote_via=quote)}"

    async def exchange_code(self, code: str) -> TokenSet:
        """Trade an authorization code for tokens."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        return await self._token(form)

    async def refresh(self, refresh_token: str) -> TokenSet:
        """Trade a refresh token (which dies) for new tokens; refused → WhoopReauthorizationRequired."""
        return await self._token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": "offline"}
        )

    async def _token(self, form: dict[str, str]) -> TokenSet:
        # No retries here: a refresh that reached WHOOP but whose answer was lost has already
        # killed the old refresh token, so a blind retry could only fail with invalid_grant.
        form = {**form, "client_id": self.client_id, "client_secret": self._secret}
        try:
            response = await self.http.post(
                f"{self.base_url}/token", data=form, timeout=self.timeout
            )
        except httpx.TimeoutException:
            raise WhoopTransportError("Connection timeout from WHOOP OAuth") from None
        except httpx.HTTPError:
            raise WhoopTransportError("Connection error talking to WHOOP OAuth") from None
        if response.status_code != 200:
            raise _token_error(response, form["grant_type"])
        return _token_set(response)


def _token_error(response: httpx.Response, grant_type: str) -> WhoopError:
    """invalid_grant means the code or refresh token is dead: only the user can fix that."""
    status = response.status_code
    code = _json(response).get("error")
    log.warning("whoop.token_refused", status=status, error=code, grant_type=grant_type)
    if status >= 500:
        return WhoopServerError(status, f"WHOOP OAuth returned {status}")
    if code == "invalid_grant":
        return WhoopReauthorizationRequired(f"WHOOP refused the grant ({code or status})")
    if status == 401:
        return WhoopAuthError(f"WHOOP OAuth rejected the client ({code or status})")
    return WhoopClientError(status, f"WHOOP OAuth returned {status} ({code or 'no error code'})")


def _token_set(response: httpx.Response) -> TokenSet:
    body = _json(response)
    try:
        return TokenSet(
            access_token=str(body["access_token"]),
            refresh_token=body.get("refresh_token"),
            expires_at=datetime.now(UTC) + timedelta(seconds=int(body.get("expires_in", 3600))),
            scope=str(body.get("scope", "")),
        )
    except (KeyError, TypeError, ValueError):
        raise WhoopServerError(
            response.status_code, "WHOOP OAuth returned a malformed token"
        ) from None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
