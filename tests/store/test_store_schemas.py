"""PostgreSQL only: one database, one schema per shard (`PostgresStore.open(schema=...)`).

Two stores on one database with schemas `shard_0_of_2` and `shard_1_of_2` (what
`monitor.shard_state` names them) keep their tables there and see only their own snapshots,
events and outbox rows; the default store (`public`) sees neither. A schema is created when
missing, used as it is when it exists (even by a role that may not create schemas), kept by
every pooled connection, and only safe names are accepted. The whole store contract also runs
in a shard's schema (backend `postgres_schema` in `tests/store/conftest.py`).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from monitor.store import Store, StoreError, open_store
from monitor.store.postgres import PostgresStore
from tests.pg_server import free_port
from tests.store.support import T0, commit, event, job

SHARD_0, SHARD_1 = "shard_0_of_2", "shard_1_of_2"

_roles = itertools.count(1)


@pytest.fixture
async def shards(pg_dsn: str) -> AsyncIterator[tuple[Store, Store]]:
    """The stores of shard 0 and shard 1 of 2 on the same database, closed afterwards."""
    zero = await open_store(pg_dsn, schema=SHARD_0)
    one = await open_store(pg_dsn, schema=SHARD_1)
    try:
        yield zero, one
    finally:
        await zero.close()
        await one.close()


async def tables_in(dsn: str, schema: str) -> set[str]:
    """The tables schema `schema` of the database holds."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    finally:
        await conn.close()
    return {str(row["tablename"]) for row in rows}


async def test_each_shard_sees_only_its_own_snapshots_and_outbox(
    pg_dsn: str, shards: tuple[Store, Store]
) -> None:
    zero, one = shards
    await commit(zero, [event("a")], upserts=(job("a"),), target="etl")
    await commit(one, [event("b", target="nightly")], upserts=(job("b"),), target="nightly")

    assert await zero.targets() == ["etl"]
    assert await one.targets() == ["nightly"]
    assert await one.load_target("etl") is None
    assert [d.event.job.id for d in await zero.due(T0)] == ["a"]
    assert [d.event.job.id for d in await one.due(T0)] == ["b"]
    assert await zero.pending_by_sink() == await one.pending_by_sink() == {"hook": 1}
    default = await open_store(pg_dsn)
    try:
        assert await default.targets() == []
        assert await default.pending_by_sink() == {}
    finally:
        await default.close()


async def test_the_tables_live_in_the_shard_schemas_and_none_in_public(
    pg_dsn: str, shards: tuple[Store, Store]
) -> None:
    zero, _ = shards
    assert isinstance(zero, PostgresStore) and zero.schema == SHARD_0
    assert SHARD_0 in repr(zero)
    for schema in (SHARD_0, SHARD_1):
        assert {"targets", "outbox", "events", "store_schema"} <= await tables_in(pg_dsn, schema)
    assert await tables_in(pg_dsn, "public") == set()


async def test_a_restarted_shard_reopens_its_own_schema(
    pg_dsn: str, shards: tuple[Store, Store]
) -> None:
    zero, _ = shards
    await commit(zero, [], upserts=(job("a"),))
    again = await open_store(pg_dsn, schema=SHARD_0)
    try:
        loaded = await again.load_target("etl")
        assert loaded is not None and list(loaded.jobs) == ["a"]
    finally:
        await again.close()


async def test_every_pooled_connection_keeps_the_schema_after_a_reset(
    pg_dsn: str, shards: tuple[Store, Store]
) -> None:
    zero, _ = shards
    assert isinstance(zero, PostgresStore)
    async with zero.pool.acquire() as conn:
        await conn.execute("SET search_path TO public")
    # The pool runs RESET ALL on release: the startup setting is what it resets to.
    for _ in range(6):
        assert await zero.pool.fetchval("SHOW search_path") == f'"{SHARD_0}"'
    await commit(zero, [], upserts=(job("a"),))
    assert await zero.targets() == ["etl"]


async def test_an_existing_schema_is_used_by_a_role_that_may_not_create_one(
    pg_dsn: str,
) -> None:
    role = f"shard_role_{next(_roles)}_{pg_dsn.rsplit('/', 1)[1]}"
    admin = await asyncpg.connect(pg_dsn, timeout=5)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN")
        await admin.execute(f"CREATE SCHEMA {SHARD_0} AUTHORIZATION {role}")
        as_role = pg_dsn.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
        store = await open_store(as_role, schema=SHARD_0)
        await store.close()
        with pytest.raises(StoreError, match=r"permission denied"):
            await open_store(as_role, schema=SHARD_1)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {SHARD_0} CASCADE")
        await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()


@pytest.mark.parametrize(
    "name",
    ["", "Shard_0", "0shard", "shard-0", 'x"; DROP TABLE jobs; --', "pg_shard", "a" * 64],
)
async def test_an_unsafe_schema_name_is_refused_before_connecting(name: str) -> None:
    url = f"postgresql://monitor@127.0.0.1:{free_port()}/state"  # nothing listens there
    with pytest.raises(ValueError, match=r"PostgreSQL schema"):
        await open_store(url, schema=name)


async def test_a_schema_with_a_sqlite_path_is_a_mistake(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"postgresql:// URL"):
        await open_store(tmp_path / "state.db", schema=SHARD_0)
    assert not (tmp_path / "state.db").exists()
