"""Engine and session factory; created in a lifespan or on_startup, never at import time."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from common import tracing
from common.db.repositories.connection_setup import begin_sqlite, configure_sqlite

Pooler = Literal["none", "transaction"]


def create_engine(url: str, *, pooler: Pooler = "none", **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL and a busy timeout so that readers never block writers, and
    synchronous=FULL so that a commit survives a power failure. With `pooler="transaction"` no
    PostgreSQL statement is kept beyond its transaction (a transaction-pooling proxy in front)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kwargs)

        event.listen(engine.sync_engine, "connect", configure_sqlite)
        event.listen(engine.sync_engine, "begin", begin_sqlite)
        tracing.instrument_engine(engine)
        return engine
    if pooler == "transaction":
        kwargs["connect_args"] = kwargs.get("connect_args", {}) | transaction_pooler_args()
    if "poolclass" not in kwargs:
        # Connections are kept, never churned: opening one costs far more than a query, and
        # overflow connections would be closed on return, so a busy process waits for a pooled
        # one instead. Twenty per process leaves room for several processes under PostgreSQL's
        # default of 100. No pre-ping (a round trip per checkout): a connection broken by a
        # database restart fails its request once and the pool is invalidated, which callers
        # survive (the webhook answers 503 and WHOOP sends again).
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 0)
        kwargs.setdefault("pool_timeout", 30)
        kwargs.setdefault("pool_recycle", 1800)
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "handle_error", _broken_protocol_is_a_disconnect)
    tracing.instrument_engine(engine)
    return engine


def transaction_pooler_args() -> dict[str, Any]:
    """asyncpg arguments for a transaction-pooling proxy (SQLAlchemy's documented PgBouncer recipe).

    Behind PgBouncer in transaction mode the next transaction may run on another server connection,
    so a named prepared statement must never be looked for again: asyncpg's statement cache and
    SQLAlchemy's are off (the raw hot-path statements go out unnamed, parsed and run in one
    exchange), and the statements SQLAlchemy prepares inside its transactions get names no other
    client uses, so two clients sharing a server connection never collide on
    `__asyncpg_stmt_1__`.
    """
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": _unique_statement_name,
    }


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


# asyncpg's words for a connection whose protocol was left mid-operation (a statement cut off by
# a server shutdown): every later use fails the same way, so it must leave the pool.
_BROKEN_PROTOCOL = ("another operation is in progress", "cannot switch to state")


def _broken_protocol_is_a_disconnect(context: Any) -> None:
    """SQLAlchemy treats asyncpg's "another operation is in progress" as an ordinary error and
    keeps the connection; mark it a disconnect so it is invalidated and replaced."""
    message = str(context.original_exception)
    if any(words in message for words in _BROKEN_PROTOCOL):
        context.is_disconnect = True


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose scope is the unit of work: one per request, one per job."""
    return async_sessionmaker(engine, expire_on_commit=False)


def create_lookup_factory(
    engine: AsyncEngine, *, pooler: Pooler = "none"
) -> async_sessionmaker[AsyncSession]:
    """Sessions for work that is one statement at a time (a look-up, or a write made of a single
    statement): on PostgreSQL in autocommit, so each statement is one round trip with no BEGIN
    and no ROLLBACK around it. A statement is atomic on its own; work of several statements that
    must stand or fall together takes `create_session_factory`'s sessions.

    SQLite (embedded: no round trips to save) and a transaction pooler get ordinary sessions:
    behind PgBouncer a statement prepared outside a transaction may be run on another server
    connection than the one that prepared it."""
    if engine.dialect.name != "postgresql" or pooler == "transaction":
        return create_session_factory(engine)
    return create_session_factory(engine.execution_options(isolation_level="AUTOCOMMIT"))
