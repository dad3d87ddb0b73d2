"""The pool every concern of the PostgreSQL backend shares, its transactions, fencing and times.

`PostgresBase` is the base of each concern's mixin (`snapshots`, `rules`, `outbox`, `sends`,
`silences`); `PostgresStore` (`monitor.store.postgres.store`) composes them over one asyncpg
pool. A write is `async with self._transaction(fenced=...)`: one connection, one transaction,
and, when the store was opened with a fence provider and the write is one a deposed leader must
not make, `check_fence` first inside that same transaction. Reads go through `_fetch*`, each
its own statement on a pooled connection.

Database and connection errors leave here as the contract's errors: `StoreWriteError` from a
write (rolled back), `StoreError` from a read, `StoreFencedOff` when the lease is not ours.
Errors raised by the caller's own code inside a transaction (`ValueError`, `KeyError`) pass
through unchanged, after the rollback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from monitor.leader.lease import Fence, FencedOff, check_fence
from monitor.store.types import StoreError, StoreFencedOff, StoreWriteError

DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # the protocol out of step, e.g. on a connection cut mid-call
    OSError,  # refused or lost connections, and TimeoutError (a `command_timeout`)
)
"""What the driver raises when the database cannot do what was asked."""


class HoldsFence(Protocol):
    """Anything with a `fence` attribute, such as `monitor.leader.LeaseKeeper`."""

    @property
    def fence(self) -> Fence | None:
        """The fence while this process leads, else None."""
        ...


FenceProvider = Callable[[], Fence | None] | HoldsFence
"""Where a fenced store gets the current `Fence`: a callable, or an object with `.fence`
(a `LeaseKeeper`). None from it means "not the leader": fenced writes are refused."""


def fence_getter(provider: FenceProvider | None) -> Callable[[], Fence | None] | None:
    """A plain callable over either form of provider (None: the store is not fenced)."""
    if provider is None:
        return None
    if callable(provider):
        return provider
    return lambda: provider.fence


def aware(moment: datetime) -> datetime:
    """`moment` in UTC; a naive time is a `ValueError` (the driver would guess its zone)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: the store only accepts timezone-aware times")
    return moment.astimezone(UTC)


def optional_aware(moment: datetime | None) -> datetime | None:
    """`aware(moment)`, or None."""
    return None if moment is None else aware(moment)


def rowcount(status: str) -> int:
    """The row count of a command status such as `UPDATE 3` or `INSERT 0 1`."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def describe(url: str, schema: str | None = None) -> str:
    """The URL as it may appear in messages: scheme, user, host, port and database only; with
    `schema`, followed by ` (schema NAME)`."""
    if schema is not None:
        return f"{describe(url)} (schema {schema})"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "postgresql://(unparsable URL)"
    if ":" in host:
        host = f"[{host}]"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{user}{host}{port}", parts.path, "", ""))


class PostgresBase:
    """The shared pool, the database's name for messages, and the fence provider (if any)."""

    _pool: Any  # asyncpg.Pool (asyncpg ships no types)
    _where: str
    _fence: Callable[[], Fence | None] | None

    @asynccontextmanager
    async def _transaction(self, *, fenced: bool = False) -> AsyncIterator[Any]:
        """A connection inside BEGIN … COMMIT (ROLLBACK on any error); fence checked first."""
        fence = self._current_fence() if fenced else None
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                if fence is not None:
                    await check_fence(conn, fence)
                yield conn
        except FencedOff as exc:
            raise StoreFencedOff(f"{self._where}: {exc}; nothing was written") from exc
        except DB_ERRORS as exc:
            raise StoreWriteError(f"PostgreSQL {self._where}: {_reason(exc)}") from exc

    def _current_fence(self) -> Fence | None:
        """The fence to check, None when the store is not fenced; `StoreFencedOff` when the
        provider says this process does not lead."""
        if self._fence is None:
            return None
        fence = self._fence()
        if fence is None:
            raise StoreFencedOff(
                f"{self._where}: this process does not hold the leader lease; nothing was written"
            )
        return fence

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[Any]:
        """A connection inside a read-only REPEATABLE READ transaction: several reads that
        see one consistent state; `StoreError` when the database cannot answer."""
        try:
            async with (
                self._pool.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                yield conn
        except DB_ERRORS as exc:
            raise StoreError(f"PostgreSQL {self._where}: {_reason(exc)}") from exc

    async def _fetch(self, query: str, *args: object) -> list[Any]:
        """The rows of one read; `StoreError` when the database cannot answer."""
        try:
            return list(await self._pool.fetch(query, *args))
        except DB_ERRORS as exc:
            raise StoreError(f"PostgreSQL {self._where}: {_reason(exc)}") from exc

    async def _fetchrow(self, query: str, *args: object) -> Any:
        """The first row of one read, or None; `StoreError` when the database cannot answer."""
        try:
            return await self._pool.fetchrow(query, *args)
        except DB_ERRORS as exc:
            raise StoreError(f"PostgreSQL {self._where}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """The driver's message, or the exception's type when it has none (a timeout)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
