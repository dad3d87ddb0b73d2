"""Inspecting PostgreSQL state read-only, for `dli-monitor state check` and the other operator
commands on sharded state: safe beside running daemons.

`inspect_schema` looks at one schema (one shard's state, or the default one) over a single
connection whose transactions are read-only, with `search_path` set as the store sets it
(`namespace`): it never creates, migrates or writes anything, so a missing schema or table is
reported, not made. `existing_schemas` says which of some schemas exist, so the command line
can tell a shard that has not run yet (or a wrong `--total-shards`) before opening a store, which
would create the schema. Opening the store for use is `store`'s; the SQLite twin of this module
is `monitor.store.sqlite.inspect`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from monitor.store.postgres.connection import DB_ERRORS, describe
from monitor.store.postgres.namespace import schema_exists, schema_name, schema_settings
from monitor.store.postgres.schema import SCHEMA_VERSION, STORE_TABLES
from monitor.store.types import StoreError, count_lines, describe_version

_CONNECT_ERRORS: tuple[type[BaseException], ...] = (*DB_ERRORS, ValueError)
"""What connecting raises for an unreachable server or an unusable URL."""


@dataclass(frozen=True, slots=True)
class SchemaReport:
    """One schema of a PostgreSQL store as `inspect_schema` found it, read without changing it."""

    where: str
    """The database without secrets, and the schema if not the default."""
    exists: bool
    version: int
    """`store_schema`'s version; 0 when the schema holds no store yet."""
    rows: dict[str, int]
    pending: dict[str, int]
    """Pending outbox rows per sink."""

    @property
    def ok(self) -> bool:
        """True when the schema exists and this release can open the store in it."""
        return self.exists and 0 <= self.version <= SCHEMA_VERSION

    def lines(self) -> list[str]:
        """The report as `dli-monitor state check` prints it, one line per fact."""
        if not self.exists:
            return [
                f"database: {self.where}",
                "no such schema (the shard creates it when it starts)",
            ]
        return [
            f"database: {self.where}",
            f"schema version: {describe_version(self.version, SCHEMA_VERSION)}",
            *count_lines(self.rows, self.pending),
            "state ok" if self.ok else "state NOT ok",
        ]


async def inspect_schema(url: str, *, password: str | None, schema: str | None) -> SchemaReport:
    """Check the store in `schema` (None: the default) read-only; `StoreError` when the database
    cannot be reached or read."""
    where = describe(url, schema)
    conn = await _connect(url, password, schema, where)
    try:
        if schema is not None and not await schema_exists(conn, schema):
            return SchemaReport(where, False, 0, {}, {})
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            tables = [t for t in ("store_schema", *STORE_TABLES) if await _table_exists(conn, t)]
            version = 0
            if "store_schema" in tables:
                version = int(await conn.fetchval("SELECT version FROM store_schema") or 0)
            rows = {
                table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
                for table in tables
                if table != "store_schema"
            }
            pending: dict[str, int] = {}
            if "outbox" in rows:
                found = await conn.fetch(
                    "SELECT sink, count(*) AS n FROM outbox WHERE status = 'pending'"
                    " GROUP BY sink ORDER BY sink"
                )
                pending = {str(r["sink"]): int(r["n"]) for r in found}
    except DB_ERRORS as exc:
        raise StoreError(f"PostgreSQL {where}: reading the state failed: {exc}") from exc
    finally:
        await conn.close()
    return SchemaReport(where, True, version, rows, pending)


async def existing_schemas(
    url: str, *, password: str | None, names: Sequence[str]
) -> frozenset[str]:
    """Which of the schemas `names` exist in the database at `url` (read-only; `StoreError`
    when it cannot be reached)."""
    checked = [schema_name(name) for name in names]
    where = describe(url)
    conn = await _connect(url, password, None, where)
    try:
        rows = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])", checked
        )
    except DB_ERRORS as exc:
        raise StoreError(f"PostgreSQL {where}: listing schemas failed: {exc}") from exc
    finally:
        await conn.close()
    return frozenset(str(row["nspname"]) for row in rows)


async def _connect(url: str, password: str | None, schema: str | None, where: str) -> Any:
    """One connection whose transactions are read-only, placed in `schema`."""
    settings = {
        "application_name": "dli-monitor",
        "default_transaction_read_only": "on",
        **schema_settings(schema),
    }
    try:
        return await asyncpg.connect(url, password=password, timeout=10, server_settings=settings)
    except _CONNECT_ERRORS as exc:
        raise StoreError(f"cannot connect to PostgreSQL {where}: {exc}") from exc


async def _table_exists(conn: Any, name: str) -> bool:
    """Whether `name` resolves to a table on the connection's `search_path`."""
    return await conn.fetchval("SELECT to_regclass($1)", name) is not None
