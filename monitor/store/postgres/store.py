"""`PostgresStore`: every concern's PostgreSQL mixin composed over one asyncpg pool.

The concerns live beside this module, one each (`snapshots`, `rules`, `outbox`, `sends`,
`silences`, `trail`); the schema and its version are `schema`'s; transactions, error mapping and the
fence check are `connection`'s; `bulk` adds the one-transaction import of `state migrate`.
This class only opens the pool (and prepares the schema), holds the fence provider, and closes
the pool. With `schema`, all of it lives in that PostgreSQL schema (`namespace`).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from monitor.store.postgres.bulk import PostgresBulk
from monitor.store.postgres.connection import (
    DB_ERRORS,
    FenceProvider,
    describe,
    fence_getter,
)
from monitor.store.postgres.namespace import ensure_namespace, schema_name, schema_settings
from monitor.store.postgres.outbox import PostgresOutbox
from monitor.store.postgres.rules import PostgresRuleMemory
from monitor.store.postgres.schema import prepare
from monitor.store.postgres.sends import PostgresSendLog
from monitor.store.postgres.silences import PostgresSilences
from monitor.store.postgres.snapshots import PostgresSnapshots
from monitor.store.postgres.trail import PostgresTrail
from monitor.store.types import StoreError

_OPEN_ERRORS: tuple[type[BaseException], ...] = (*DB_ERRORS, ValueError)
"""What opening the pool raises for an unreachable server or an unusable URL."""

POOL_MIN = 1
POOL_MAX = 4
"""Connections per process: one poll commit, one delivery claim or mark, and a spare or two."""


class PostgresStore(
    PostgresSnapshots,
    PostgresRuleMemory,
    PostgresOutbox,
    PostgresSendLog,
    PostgresSilences,
    PostgresTrail,
    PostgresBulk,
):
    """The `Store` contract in a PostgreSQL database shared by replicas; every write is one
    transaction, and with a fence provider the leader-only writes are fenced by the lease."""

    def __init__(
        self,
        pool: Any,
        url: str,
        fence: FenceProvider | None = None,
        *,
        schema: str | None = None,
    ) -> None:
        """Wrap an open pool whose schema is in place; use `PostgresStore.open` instead."""
        self._pool = pool
        self._schema = schema
        self._where = describe(url, schema)
        self._fence = fence_getter(fence)
        self._closed = False

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        password: str | None = None,
        fence: FenceProvider | None = None,
        command_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        idle_in_transaction_timeout: float | None = None,
        schema: str | None = None,
    ) -> PostgresStore:
        """Connect to the database at `url` (a pool of up to 4) and create or check its schema.

        `password` is kept out of the URL (and so out of every message). Without one, asyncpg
        looks at `PGPASSWORD` and `~/.pgpass`. `fence` makes `commit_poll`, the claim (`due`)
        and the outbox's state changes check the leader lease inside their transaction.
        `idle_in_transaction_timeout` has the server end a session that sits idle inside a
        transaction that long: a leader frozen (SIGSTOP) between its fence check and its commit
        would otherwise keep the lease row locked, and no standby could take over.
        `schema`: the PostgreSQL schema to keep the tables in, created when missing (`ValueError`
        for an unsafe name); None leaves `search_path` as the server sets it (normally `public`).
        `StoreError` when the database cannot be reached or its schema is from a newer release.
        """
        schema = None if schema is None else schema_name(schema)
        where = describe(url, schema)
        settings = {"application_name": "dli-monitor", **schema_settings(schema)}
        if idle_in_transaction_timeout is not None:
            limit_ms = max(1, int(idle_in_transaction_timeout * 1000))
            settings["idle_in_transaction_session_timeout"] = str(limit_ms)
        try:
            pool = await asyncpg.create_pool(
                url,
                password=password,
                min_size=POOL_MIN,
                max_size=POOL_MAX,
                command_timeout=command_timeout,
                timeout=connect_timeout,
                server_settings=settings,
            )
        except _OPEN_ERRORS as exc:
            raise StoreError(f"cannot connect to PostgreSQL {where}: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await ensure_namespace(conn, schema)
                await prepare(conn, where)
        except DB_ERRORS as exc:
            await pool.close()
            raise StoreError(f"PostgreSQL {where}: preparing the schema failed: {exc}") from exc
        except BaseException:
            await pool.close()
            raise
        return cls(pool, url, fence, schema=schema)

    @property
    def pool(self) -> Any:
        """The asyncpg pool, for PostgreSQL-only tools and tests (never for the monitor itself)."""
        return self._pool

    @property
    def schema(self) -> str | None:
        """The PostgreSQL schema the tables live in (None: the server's `search_path`)."""
        return self._schema

    @property
    def fenced(self) -> bool:
        """True when leader-only writes check the lease."""
        return self._fence is not None

    async def close(self) -> None:
        """Close the pool (waiting for connections in use); closing twice is harmless."""
        if not self._closed:
            self._closed = True
            await self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self._where!r}, fenced={self.fenced})"
