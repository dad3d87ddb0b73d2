"""Shards on one PostgreSQL database: each shard its own schema, its own lease, its own leader.

`monitor.shard_state` names shard `i` of `n`'s schema `shard_<i>_of_<n>` and its lease
`dli-monitor/shard-<i>`. Keepers built the way the daemon builds them
(`Leadership.from_settings`) for shard 0 and shard 1 both lead at once, each on its own lease
row with its own fencing token, while two replicas of one shard elect one leader. A `Monitor`
of shard 1 of 2 opens that schema and leads under that lease; one shard keeps `public` and
`dli-monitor`, as before sharding. A fresh database per test (`pg_dsn`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import Monitor
from monitor.config import StateSettings
from monitor.health import Health
from monitor.leader import Fence, LeaseKeeper
from monitor.leadership import Leadership
from monitor.shard import Shard
from monitor.shard_state import state_scope
from monitor.store import StoreFencedOff
from monitor.store.postgres import PostgresStore
from tests.conftest import Harness
from tests.store.support import T0

LONG_TTL = 30.0  # never runs out during a test: takeovers here are releases


def keeper_for(pg_dsn: str, shard: Shard) -> LeaseKeeper:
    """A keeper for one replica of `shard`, built as `Monitor` builds it."""
    scope = state_scope(shard, shared_database=True)
    leadership = Leadership.from_settings(
        StateSettings(url=pg_dsn, lease_ttl=LONG_TTL),
        CollectorRegistry(),
        Health(stale_after_s=60),
        name=scope.lease,
        schema=scope.schema,
    )
    assert leadership.keeper is not None
    return leadership.keeper


@asynccontextmanager
async def keepers(pg_dsn: str, *shards: Shard) -> AsyncIterator[list[LeaseKeeper]]:
    """One keeper per entry of `shards` (not started: the test drives `run_once`), stopped
    (and their leases released) afterwards."""
    built = [keeper_for(pg_dsn, shard) for shard in shards]
    async with AsyncExitStack() as stack:
        for keeper in built:
            stack.push_async_callback(keeper.stop)
        yield built


async def lease_rows(pg_dsn: str, schema: str) -> list[tuple[str, str, int]]:
    """(name, holder, token) of every lease row in `schema`."""
    conn = await asyncpg.connect(pg_dsn, timeout=5)
    try:
        rows = await conn.fetch(f"SELECT name, holder, token FROM {schema}.lease ORDER BY name")
    finally:
        await conn.close()
    return [(str(r["name"]), str(r["holder"]), int(r["token"])) for r in rows]


async def regclass(pg_dsn: str, name: str) -> str | None:
    """`to_regclass(name)`: the table when it exists, else None."""
    conn = await asyncpg.connect(pg_dsn, timeout=5)
    try:
        found = await conn.fetchval("SELECT to_regclass($1)::text", name)
    finally:
        await conn.close()
    return None if found is None else str(found)


async def test_two_shards_lead_at_once_while_two_replicas_of_one_shard_elect_one(
    pg_dsn: str,
) -> None:
    async with keepers(pg_dsn, Shard(0, 2), Shard(1, 2), Shard(0, 2)) as (zero, one, twin):
        assert await zero.run_once()
        assert await one.run_once()  # another shard's lease: no contention
        assert not await twin.run_once()  # shard 0 already has its leader
        assert zero.fence == Fence("dli-monitor/shard-0", zero.holder, 1)
        assert one.fence == Fence("dli-monitor/shard-1", one.holder, 1)
        assert await lease_rows(pg_dsn, "shard_0_of_2") == [("dli-monitor/shard-0", zero.holder, 1)]
        assert await lease_rows(pg_dsn, "shard_1_of_2") == [("dli-monitor/shard-1", one.holder, 1)]
        assert await regclass(pg_dsn, "public.lease") is None

        await zero.stop()  # releases shard 0's lease: its twin takes over, shard 1 is untouched
        assert await twin.run_once()
        assert await one.run_once()
        assert twin.fence == Fence("dli-monitor/shard-0", twin.holder, 2)
        assert one.fence == Fence("dli-monitor/shard-1", one.holder, 1)


async def test_a_takeover_in_one_shard_fences_off_its_old_leader_and_no_other_shard(
    pg_dsn: str,
) -> None:
    async with keepers(pg_dsn, Shard(0, 2), Shard(1, 2), Shard(0, 2)) as (zero, one, twin):
        assert await zero.run_once() and await one.run_once()
        stale = zero.fence
        old = await PostgresStore.open(pg_dsn, fence=lambda: stale, schema="shard_0_of_2")
        other = await PostgresStore.open(pg_dsn, fence=one, schema="shard_1_of_2")
        try:
            await old.due(T0)  # each fence check finds its own lease row in its own schema
            await other.due(T0)
            await zero.stop()
            assert await twin.run_once()  # shard 0's token moves to 2
            with pytest.raises(StoreFencedOff, match=re.escape(twin.holder)):
                await old.due(T0)
            assert await other.due(T0) == []  # shard 1's leader is not disturbed
        finally:
            await old.close()
            await other.close()


def sharded(pg_dsn: str) -> dict[str, Any]:
    """Config overrides: state in PostgreSQL, queues `etl` (shard 0 of 2) and `nightly` (1)."""
    return {"state": {"url": pg_dsn, "lease_ttl": "1s"}, "queues": ["etl", "nightly"]}


async def test_a_monitor_of_shard_1_of_2_opens_its_schema_and_leads_under_its_lease(
    harness: Harness, pg_dsn: str
) -> None:
    settings = harness.settings(**sharded(pg_dsn))
    async with AsyncExitStack() as stack:
        monitors = [
            await stack.enter_async_context(
                Monitor(settings, clock=harness.clock, shard=Shard(i, 2))
            )
            for i in (0, 1)
        ]
        for monitor in monitors:
            assert await monitor.leadership.wait_leading(5)  # both shards lead at once
            assert (await monitor.run_cycle()).ok
        one = monitors[1]
        assert isinstance(one.store, PostgresStore) and one.store.schema == "shard_1_of_2"
        assert one.leadership.role_view()["lease"] == "dli-monitor/shard-1"
        assert await one.store.targets() == ["nightly"]
        assert await monitors[0].store.targets() == ["etl"]
        holder = one.leadership.holder
        assert await lease_rows(pg_dsn, "shard_1_of_2") == [("dli-monitor/shard-1", holder, 1)]
    assert await regclass(pg_dsn, "public.targets") is None


async def test_one_shard_keeps_the_default_schema_and_lease(harness: Harness, pg_dsn: str) -> None:
    settings = harness.settings(state={"url": pg_dsn, "lease_ttl": "1s"})
    async with Monitor(settings, clock=harness.clock, shard=Shard(0, 1)) as monitor:
        assert await monitor.leadership.wait_leading(5)
        assert isinstance(monitor.store, PostgresStore) and monitor.store.schema is None
        assert monitor.leadership.role_view()["lease"] == "dli-monitor"
    assert await regclass(pg_dsn, "public.lease") == "lease"
    assert await regclass(pg_dsn, "public.targets") == "targets"
