"""The access token of one WHOOP connection, refreshed safely across every process.

WHOOP rotates the refresh token on every refresh and kills the old one, so two concurrent refreshes
of one connection would lose it. Hence: one refresh per connection at a time (`token:{user_id}`
lock, shared through Redis, its lease extended while the refresh runs), the stored token read AGAIN
once the lock is held (another process may have refreshed meanwhile: then its token is used), and
the new tokens committed (compare-and-set on `token_version`) BEFORE the new access token is handed
out. Every status write is conditional on the version the refresh started from: a refusal seen by
a holder whose tokens were replaced meanwhile (a reconnect, a disconnect, another refresh) changes
nothing, and the stored tokens win.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.crypto import TokenCipher
from common.db.repositories.connections import ConnectionRepository
from common.db.repositories.ops import RECONCILE_FAILURE
from common.db.types import utcnow
from common.feed.lifecycle import REAUTHORIZATION_REQUIRED, record_lifecycle
from common.locks import Locks, LockTimeout
from common.metrics import RECONCILE_FAILURES, TOKEN_REFRESHES
from common.sync.oplog import note_incident
from common.types import ConnectionStatus
from common.whoop.errors import WhoopError, WhoopReauthorizationRequired, WhoopTransportError
from common.whoop.oauth import OAuthClient

__all__ = ["EXPIRY_MARGIN", "ConnectionTokens", "refresh_expiring"]

log = structlog.get_logger(__name__)

EXPIRY_MARGIN = timedelta(minutes=5)
LOCK_TIMEOUT = 30.0  # the lease; extended while the holder lives, so only a dead one loses it
LOCK_WAIT = 30.0  # a caller's wait for another's refresh (a token request times out at 10 s)

SessionFactory = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class _Stored:
    access_token: str | None
    refresh_token: str | None
    expires_at: datetime | None
    version: int


class ConnectionTokens:
    """TokenSource over the `whoop_connection` row of one user (own short, committed transactions)."""

    def __init__(
        self,
        session_factory: SessionFactory,
        user_id: uuid.UUID,
        cipher: TokenCipher,
        oauth: OAuthClient,
        locks: Locks,
        *,
        margin: timedelta = EXPIRY_MARGIN,
    ) -> None:
        self.session_factory, self.user_id = session_factory, user_id
        self.cipher, self.oauth, self.locks, self.margin = cipher, oauth, locks, margin
        self.refreshed = 0  # refreshes this instance performed itself
        self._cached: _Stored | None = None

    def seed(self, access_token_enc: str | None, expires_at: datetime | None, version: int) -> None:
        """Start from a stored access token just read with something else (an event's claim);
        a refresh reads the row again under its lock, as always."""
        if access_token_enc is not None:
            token = self.cipher.decrypt(access_token_enc)
            self._cached = _Stored(token, None, expires_at, version)

    async def access_token(self) -> str:
        """A token valid for at least `margin`; refreshed first when it is not."""
        stored = self._cached if self._cached and self._usable(self._cached) else await self._read()
        if self._usable(stored):
            assert stored.access_token is not None
            return stored.access_token
        return await self._refresh_unless(lambda s: self._usable(s))

    async def refresh(self, rejected: str) -> str:
        """A new token after WHOOP rejected `rejected`; reuses one another caller already got."""
        return await self._refresh_unless(lambda s: self._usable(s) and s.access_token != rejected)

    def _usable(self, stored: _Stored) -> bool:
        return (
            stored.access_token is not None
            and stored.expires_at is not None
            and stored.expires_at - self.margin > utcnow()
        )

    async def _refresh_unless(self, fresh_enough: Callable[[_Stored], bool]) -> str:
        try:
            async with self.locks.lock(
                f"token:{self.user_id}",
                timeout=LOCK_TIMEOUT,
                blocking_timeout=LOCK_WAIT,
                keep_alive=True,
            ):
                stored = await self._read()  # again: another process may have refreshed already
                if not fresh_enough(stored):
                    stored = await self._refresh(stored)
        except LockTimeout:
            raise WhoopTransportError("Timed out waiting for a WHOOP token refresh") from None
        assert stored.access_token is not None
        return stored.access_token

    async def _refresh(self, stored: _Stored) -> _Stored:
        """Refresh at WHOOP and store the new tokens. The store is its own unit of work by
        design: WHOOP has just killed the old refresh token, so the new one is committed before
        the new access token is handed out, whatever becomes of the caller's own transaction."""
        if not stored.refresh_token:
            if not await self._require_reauthorization(stored.version):
                return await self._read()  # replaced meanwhile: the stored tokens win
            raise WhoopReauthorizationRequired("No WHOOP refresh token; reconnect required")
        try:
            tokens = await self.oauth.refresh(stored.refresh_token)
        except WhoopReauthorizationRequired:
            TOKEN_REFRESHES.labels("refused").inc()
            if not await self._require_reauthorization(stored.version):
                return await self._read()  # replaced meanwhile: the stored tokens win
            raise
        except WhoopError:
            TOKEN_REFRESHES.labels("error").inc()
            raise
        refresh_token = tokens.refresh_token or stored.refresh_token
        async with self.session_factory.begin() as session:
            written = await ConnectionRepository(session).store_tokens(
                self.user_id,
                expected_version=stored.version,
                access_token_enc=self.cipher.encrypt(tokens.access_token),
                refresh_token_enc=self.cipher.encrypt(refresh_token),
                expires_at=tokens.expires_at,
            )
        TOKEN_REFRESHES.labels("success").inc()
        self.refreshed += 1
        if not written:
            # Someone replaced the tokens despite the lock (a reconnect, or our lock expired):
            # theirs are the stored ones, and only stored tokens may be used.
            log.warning("token.refresh_superseded", user_id=str(self.user_id))
            return await self._read()
        log.info("token.refreshed", user_id=str(self.user_id))
        self._cached = _Stored(
            tokens.access_token, refresh_token, tokens.expires_at, stored.version + 1
        )
        return self._cached

    async def _read(self) -> _Stored:
        async with self.session_factory() as session:
            row = await ConnectionRepository(session).get(self.user_id)
        if row is None or row.status == ConnectionStatus.REVOKED.value:
            raise WhoopReauthorizationRequired("No WHOOP connection; connect WHOOP first")
        if row.status == ConnectionStatus.REAUTHORIZATION_REQUIRED.value:
            raise WhoopReauthorizationRequired()
        dec = self.cipher.decrypt
        self._cached = _Stored(
            dec(row.access_token_enc) if row.access_token_enc else None,
            dec(row.refresh_token_enc) if row.refresh_token_enc else None,
            row.expires_at,
            row.token_version,
        )
        return self._cached

    async def _require_reauthorization(self, version: int) -> bool:
        """Mark the connection unless its tokens moved past `version`; True when marked.

        Its own unit of work by design: the refusal is decided under the refresh lock, and every
        process must see it at once (the caller's transaction, if any, may still fail)."""
        async with self.session_factory.begin() as session:
            connections = ConnectionRepository(session)
            marked = await connections.set_status(
                self.user_id, ConnectionStatus.REAUTHORIZATION_REQUIRED, expected_version=version
            )
            row = await connections.get(self.user_id) if marked else None
            if row is not None:  # the app hears it as a lifecycle change (SPEC 3.5)
                await record_lifecycle(
                    session,
                    user_id=self.user_id,
                    whoop_user_id=row.whoop_user_id,
                    action=REAUTHORIZATION_REQUIRED,
                    at=utcnow(),
                )
        if marked:
            log.warning("token.reauthorization_required", user_id=str(self.user_id))
        else:
            log.warning("token.refusal_superseded", user_id=str(self.user_id))
        return marked


async def refresh_expiring(
    session_factory: SessionFactory,
    cipher: TokenCipher,
    oauth: OAuthClient,
    locks: Locks,
    within: timedelta,
) -> int:
    """Refresh every active connection expiring within `within` (worker cron); how many were."""
    async with session_factory() as session:
        moment = utcnow() + within
        user_ids = [c.user_id for c in await ConnectionRepository(session).expiring_before(moment)]
    refreshed = 0
    for user_id in user_ids:
        tokens = ConnectionTokens(session_factory, user_id, cipher, oauth, locks, margin=within)
        try:
            await tokens.access_token()
        except WhoopError as exc:
            log.warning("token.refresh_failed", user_id=str(user_id), reason=exc.reason)
        except Exception as exc:  # one bad connection never stops the pass for the others
            RECONCILE_FAILURES.labels("refresh_tokens").inc()
            await note_incident(session_factory, RECONCILE_FAILURE, "refresh_tokens")
            log.exception("token.refresh_crashed", user_id=str(user_id), error=type(exc).__name__)
        refreshed += tokens.refreshed
    return refreshed
