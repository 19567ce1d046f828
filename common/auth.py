"""Bearer tokens of the app's users: HS256 with a shared secret, or RS256/ES256 against a JWKS.

`sub` is the user's UUID. Audience and issuer are checked when configured, not otherwise (Supabase
tokens carry `aud: authenticated`). Every refusal is an `AuthError` whose message never contains the
token.

A token that passed every check is remembered (bounded LRU, keyed by the whole token, signature
included) with its `exp`: until then, and for at most VERIFIED_TTL_SECONDS, the same token is accepted
without decoding it again. Only successes are kept, so nothing refused is ever accepted from memory;
the TTL bounds how long a token stays accepted after its signing key leaves the JWKS.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from datetime import timedelta
from typing import Any, NamedTuple

import httpx
import jwt

from common.config import ConfigError, Settings
from common.db.types import utcnow

ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]
JWKS_TTL_SECONDS = 300.0
# An unknown `kid` makes us fetch the JWKS again (key rotation), but not more often than this.
JWKS_MIN_REFETCH_SECONDS = 10.0
VERIFIED_CACHE_SIZE = 4096
VERIFIED_TTL_SECONDS = 60.0


class AuthError(Exception):
    """A bearer token was refused; the message says why in one line."""


def mint_token(
    user_id: uuid.UUID,
    secret: str,
    ttl: timedelta = timedelta(hours=1),
    *,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 bearer token for a user, valid for `ttl`."""
    now = utcnow()
    claims: dict[str, Any] = {"sub": str(user_id), "iat": now, "exp": now + ttl}
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


class JwksCache:
    """The signing keys of a JWKS URL, fetched with httpx and kept for a few minutes."""

    def __init__(self, url: str, http: httpx.AsyncClient, ttl: float = JWKS_TTL_SECONDS) -> None:
        self.url = url
        self.http = http
        self.ttl = ttl
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key named by `kid` (or the only key when the token names none)."""
        if time.monotonic() - self._fetched_at > self.ttl:
            await self._refresh(self._fetched_at)
        found = self._find(kid)
        if found is None and time.monotonic() - self._fetched_at > JWKS_MIN_REFETCH_SECONDS:
            await self._refresh(self._fetched_at)
            found = self._find(kid)
        if found is None:
            raise AuthError("token signed with an unknown key")
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self, seen_at: float) -> None:
        async with self._lock:
            if self._fetched_at != seen_at:
                return  # another caller refreshed while we waited
            try:
                response = await self.http.get(self.url, timeout=5.0)
                response.raise_for_status()
                jwk_set = jwt.PyJWKSet.from_dict(response.json())
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                raise AuthError("signing keys are unavailable") from exc
            self._keys = {
                str(k.key_id): k for k in jwk_set.keys if k.algorithm_name in ASYMMETRIC_ALGORITHMS
            }
            self._fetched_at = time.monotonic()


class _Verified(NamedTuple):
    user_id: uuid.UUID
    expires_at: float  # the token's `exp`, epoch seconds
    recheck_at: float  # monotonic: verify in full again from here on


class TokenVerifier:
    """Checks bearer tokens as the settings say and returns the user's UUID."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer
        self.secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self.jwks: JwksCache | None = None
        if settings.jwt_jwks_url:
            if http is None:
                raise ValueError("a JWKS URL needs an http client")
            self.jwks = JwksCache(settings.jwt_jwks_url, http)
        elif not self.secret:
            raise ConfigError(
                "WHOOPSYNC_JWT_SECRET or WHOOPSYNC_JWT_JWKS_URL is required but not set"
            )
        self._verified: OrderedDict[str, _Verified] = OrderedDict()

    async def verify_token(self, token: str) -> uuid.UUID:
        """The `sub` of a valid token as a UUID; AuthError for anything else."""
        known = self._verified.get(token)
        if known is not None:
            # PyJWT refuses once `exp <= now`; the same rule here.
            if time.time() < known.expires_at and time.monotonic() < known.recheck_at:
                self._verified.move_to_end(token)
                return known.user_id
            del self._verified[token]
        user_id, expires_at = await self._verify(token)
        self._verified[token] = _Verified(
            user_id, expires_at, time.monotonic() + VERIFIED_TTL_SECONDS
        )
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return user_id

    async def _verify(self, token: str) -> tuple[uuid.UUID, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("malformed token") from exc
        key: Any
        if self.jwks is not None:
            algorithms = ASYMMETRIC_ALGORITHMS
            key = (await self.jwks.key(header.get("kid"))).key
        else:
            algorithms, key = ["HS256"], self.secret
        claims = self._decode(token, key, algorithms)
        expires_at = float(claims["exp"])  # required, and checked to be a number by PyJWT
        try:
            return uuid.UUID(str(claims["sub"])), expires_at
        except (KeyError, ValueError) as exc:
            raise AuthError("token subject is not a user id") from exc

    def _decode(self, token: str, key: Any, algorithms: list[str]) -> dict[str, Any]:
        try:
            return dict(
                jwt.decode(
                    token,
                    key,
                    algorithms=algorithms,
                    audience=self.audience,
                    issuer=self.issuer,
                    options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
                )
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError("token audience not accepted") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError("token issuer not accepted") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthError("token signature is invalid") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
