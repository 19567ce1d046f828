"""WHOOP's OAuth 2.0 server, simulated: codes, rotating refresh tokens, expiring access tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

CODE_TTL_MS = 10 * 60 * 1000
PRUNE_AT = 50_000  # access tokens kept before expired ones are dropped


class OAuthError(Exception):
    """An RFC 6749 error: `error` code and HTTP status."""

    def __init__(self, error: str, status: int = 400, description: str = "") -> None:
        super().__init__(error)
        self.error, self.status, self.description = error, status, description


@dataclass
class Grant:
    """What a code or token stands for."""

    user_id: int
    scope: str
    expires_ms: int | None = None
    redirect_uri: str | None = None


@dataclass
class TokenStore:
    """Codes and tokens of every member; a refresh token works once."""

    access_ttl_ms: int
    codes: dict[str, Grant] = field(default_factory=dict)
    access: dict[str, Grant] = field(default_factory=dict)
    refresh: dict[str, Grant] = field(default_factory=dict)

    def issue_code(self, user_id: int, scope: str, redirect_uri: str, now_ms: int) -> str:
        """A single-use authorization code, valid ten minutes."""
        code = secrets.token_urlsafe(24)
        self.codes[code] = Grant(user_id, scope, now_ms + CODE_TTL_MS, redirect_uri)
        return code

    def pending_users(self) -> set[int]:
        """Members with an unexchanged code (so the next authorize picks someone else)."""
        return {g.user_id for g in self.codes.values()}

    def exchange_code(self, code: str, redirect_uri: str | None, now_ms: int) -> dict[str, object]:
        """Tokens for a code; the code dies at once."""
        grant = self.codes.pop(code, None)
        if grant is None or (grant.expires_ms or 0) < now_ms:
            raise OAuthError("invalid_grant", description="unknown, used or expired code")
        if redirect_uri is not None and redirect_uri != grant.redirect_uri:
            raise OAuthError("invalid_grant", description="redirect_uri does not match")
        return self._issue(grant.user_id, grant.scope, now_ms)

    def rotate(self, refresh_token: str, now_ms: int) -> dict[str, object]:
        """New tokens for a refresh token, which is spent by it."""
        grant = self.refresh.pop(refresh_token, None)
        if grant is None:
            raise OAuthError("invalid_grant", description="unknown or spent refresh token")
        return self._issue(grant.user_id, grant.scope, now_ms)

    def grant_for(self, access_token: str, now_ms: int) -> Grant | None:
        """What an access token grants, if it is known and unexpired."""
        grant = self.access.get(access_token)
        if grant is None or (grant.expires_ms or 0) <= now_ms:
            return None
        return grant

    def user_of(self, access_token: str) -> int:
        """The member an access token was issued to."""
        return self.access[access_token].user_id

    def expire_access(self, user_id: int) -> int:
        """Make every access token of the member expired; returns how many."""
        hits = [g for g in self.access.values() if g.user_id == user_id]
        for grant in hits:
            grant.expires_ms = 0
        return len(hits)

    def revoke_refresh(self, user_id: int) -> int:
        """Kill every refresh token of the member; returns how many."""
        dead = [t for t, g in self.refresh.items() if g.user_id == user_id]
        for token in dead:
            del self.refresh[token]
        return len(dead)

    def revoke_all(self, user_id: int) -> None:
        """Forget every token of the member (WHOOP's DELETE /v2/user/access)."""
        self.revoke_refresh(user_id)
        for token in [t for t, g in self.access.items() if g.user_id == user_id]:
            del self.access[token]

    def _issue(self, user_id: int, scope: str, now_ms: int) -> dict[str, object]:
        if len(self.access) > PRUNE_AT:
            self.access = {t: g for t, g in self.access.items() if (g.expires_ms or 0) > now_ms}
        access = secrets.token_urlsafe(32)
        self.access[access] = Grant(user_id, scope, now_ms + self.access_ttl_ms)
        body: dict[str, object] = {
            "access_token": access,
            "expires_in": self.access_ttl_ms // 1000,
            "scope": scope,
            "token_type": "bearer",
        }
        # WHOOP hands out a refresh token only when the `offline` scope was granted.
        if "offline" in scope.split():
            refresh = secrets.token_urlsafe(32)
            self.refresh[refresh] = Grant(user_id, scope)
            body["refresh_token"] = refresh
        return body
