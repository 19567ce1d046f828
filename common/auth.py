"""Bearer tokens of the app's users: HS256 with a shared secret, or RS256/ES256 against a JWKS.

`sub` is the user's UUID. Audience and issuer are checked when configured, not otherwise (Supabase
tokens carry `aud: authenticated`). A JWKS token is checked with its key's own algorithm only. Every refusal is an `AuthError` whose message never contains the
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
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NamedTuple

import httpx
import jwt
import structlog

from common.config import ConfigError, Settings
from common.db.types import utcnow

ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]
JWKS_TTL_SECONDS = 300.0  # keys older than this are fetched again, in the background
JWKS_TIMEOUT_SECONDS = 5.0
# An unknown `kid` makes us fetch the JWKS again (key rotation): at most once a minute per `kid`,
# and no two fetches closer than this, so tokens with made-up kids cannot hammer the endpoint.
JWKS_UNKNOWN_KID_SECONDS = 60.0
JWKS_MIN_REFETCH_SECONDS = 10.0
JWKS_BACKOFF_SECONDS = (1.0, 300.0)  # after a failed fetch: first wait, doubling up to the last
JWKS_KIDS_REMEMBERED = 1024
VERIFIED_CACHE_SIZE = 4096
VERIFIED_TTL_SECONDS = 60.0

log = structlog.get_logger(__name__)


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
    """The signing keys of a JWKS URL, fetched with httpx.

    The last good keys are served until a fetch succeeds: past their TTL they are refreshed in
    the background, so a slow or hanging endpoint delays no request that knows its key. Failed
    fetches back off (doubling); an unknown `kid` waits for one fetch at most once a minute.
    """

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        ttl: float = JWKS_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, self.http, self.ttl, self.clock = url, http, ttl, clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")  # last success
        self._attempted_at = float("-inf")
        self._retry_at = float("-inf")  # no fetch before this after a failure
        self._failures = 0
        self._kids_fetched_for: OrderedDict[str, float] = OrderedDict()
        self._inflight: asyncio.Task[None] | None = None

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key named by `kid` (or the only key when the token names none)."""
        now = self.clock()
        if not self._keys:
            if now < self._retry_at:
                raise AuthError("signing keys are unavailable")
            await self._fetch()
        elif now - self._fetched_at > self.ttl and now >= self._retry_at:
            self._start_fetch()  # the current keys serve meanwhile
        found = self._find(kid)
        if found is None and kid is not None:
            if self._inflight is not None and not self._inflight.done():
                await asyncio.shield(self._inflight)  # a rotation: the fetch under way may bring it
                found = self._find(kid)
            elif self._may_fetch_for(kid, now):
                await self._fetch()
                found = self._find(kid)
        if found is None:
            raise AuthError(
                "token signed with an unknown key" if self._keys else "signing keys are unavailable"
            )
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _may_fetch_for(self, kid: str, now: float) -> bool:
        last = self._kids_fetched_for.get(kid, float("-inf"))
        if (
            now - last < JWKS_UNKNOWN_KID_SECONDS
            or now - self._attempted_at < JWKS_MIN_REFETCH_SECONDS
            or now < self._retry_at
        ):
            return False
        self._kids_fetched_for[kid] = now
        self._kids_fetched_for.move_to_end(kid)
        if len(self._kids_fetched_for) > JWKS_KIDS_REMEMBERED:
            self._kids_fetched_for.popitem(last=False)
        return True

    def _start_fetch(self) -> asyncio.Task[None]:
        """The fetch under way, or a new one: every caller shares one."""
        if self._inflight is None or self._inflight.done():
            self._attempted_at = self.clock()
            self._inflight = asyncio.create_task(self._fetch_now())
        return self._inflight

    async def _fetch(self) -> None:
        # Shielded: a request that gives up does not cancel the fetch the others wait for.
        await asyncio.shield(self._start_fetch())

    async def _fetch_now(self) -> None:
        try:
            response = await self.http.get(self.url, timeout=JWKS_TIMEOUT_SECONDS)
            response.raise_for_status()
            jwk_set = jwt.PyJWKSet.from_dict(response.json())
        except Exception as exc:  # whatever the endpoint did, it is a failed fetch
            self._failures += 1
            first, most = JWKS_BACKOFF_SECONDS
            self._retry_at = self.clock() + min(most, first * 2 ** (self._failures - 1))
            log.warning("jwks.fetch_failed", error=type(exc).__name__, failures=self._failures)
            return
        self._keys = {
            str(k.key_id): k for k in jwk_set.keys if k.algorithm_name in ASYMMETRIC_ALGORITHMS
        }
        self._fetched_at, self._failures, self._retry_at = self.clock(), 0, float("-inf")


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
            jwk = await self.jwks.key(header.get("kid"))
            if header.get("alg") != jwk.algorithm_name:  # e.g. an ES256 header naming an RSA key
                raise AuthError("token algorithm does not match its key")
            algorithms, key = [jwk.algorithm_name], jwk.key
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
