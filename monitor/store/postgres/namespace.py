"""The PostgreSQL schema (namespace) a store's tables live in, for one shard's state of many.

A store opened with `schema="shard_0_of_2"` keeps its tables, its `store_schema` version row and
the `lease` table of its replicas in that schema: every connection of its pool starts with
`search_path` set to it (a startup setting, so the pool's `RESET ALL` on release keeps it), and
the keeper's connection does the same (`monitor.leadership`). Nothing in the SQL of the store or
the lease names a schema; `search_path` alone places them. Only `pg_catalog` (always searched
first) is visible besides it, so a table missing from the schema is an error, never silently
another schema's.

`None` (the default) leaves `search_path` as the server and role set it (normally
`"$user", public`): exactly what a store opened before schemas existed used, so its state stays
where it is. Names are checked here (`schema_name`), never quoted from user input into SQL.
"""

from __future__ import annotations

import re
from typing import Any

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""A lower-case unquoted identifier that fits PostgreSQL's 63-byte limit."""

_LOCK = "SELECT pg_advisory_xact_lock(hashtext('monitor.store.namespace'))"
"""Serialises `CREATE SCHEMA` between replicas starting together (it can collide otherwise)."""


def schema_name(name: str) -> str:
    """`name` when it is a safe schema name for the store, else `ValueError`.

    Safe: lower-case letters, digits and `_`, not starting with a digit, at most 63 characters,
    and not `pg_…` (reserved for system schemas) or `information_schema`.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"PostgreSQL schema {name!r} is not a safe name: use 1-63 lower-case letters, digits"
            " and '_', not starting with a digit"
        )
    if name.startswith("pg_") or name == "information_schema":
        raise ValueError(f"PostgreSQL schema {name!r} is reserved for the system")
    return name


def schema_settings(schema: str | None) -> dict[str, str]:
    """The startup settings that place a connection in `schema` (none for the default)."""
    if schema is None:
        return {}
    return {"search_path": f'"{schema_name(schema)}"'}


async def ensure_namespace(conn: Any, schema: str | None) -> None:
    """Create `schema` when it is missing (nothing for the default); safe to race.

    An existing schema is left alone without asking for `CREATE` on the database, so a role
    that was only granted the schema (the operator created it) works too.
    """
    if schema is None:
        return
    name = schema_name(schema)
    if await schema_exists(conn, name):
        return
    async with conn.transaction():
        await conn.execute(_LOCK)
        if not await schema_exists(conn, name):
            await conn.execute(f'CREATE SCHEMA "{name}"')


async def schema_exists(conn: Any, name: str) -> bool:
    """Whether schema `name` exists in the connection's database."""
    found = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", name)
    return found is not None
