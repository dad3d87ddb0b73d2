"""Two monitors in one process on one PostgreSQL database: one leads, the other stands by.

The harness's simulator and receiver (fake clock for the cycles' timestamps), a fresh database
per test (`pg_dsn`), and a 1 s lease: the lease's own timing is real (the keeper's monotonic
clock, the server's `now()`), so every wait here is bounded by a few TTLs. Cycles are driven by
hand with `Monitor.run_cycle`, which goes through the same guard as the scheduled jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
import pytest
from structlog.testing import capture_logs

from monitor.app import Monitor
from monitor.dispatch import Dispatcher
from monitor.leader import check_fence
from monitor.leadership import STANDBY_REASON
from monitor.models import Notification
from monitor.sinks.webhook import INSTANCE_HEADER
from monitor.store import StoreFencedOff, open_store
from monitor.store.postgres.connection import DB_ERRORS
from tests.conftest import Harness
from tests.store.support import T0, commit, event

TTL = "1s"
TTL_S = 1.0


def ha(pg_dsn: str, **state: Any) -> dict[str, Any]:
    """Config overrides: state in PostgreSQL with a short lease, the HTTP server on."""
    return {
        "state": {"url": pg_dsn, "lease_ttl": TTL, **state},
        "server": {"enabled": True, "listen": "127.0.0.1:0"},
    }


async def until(test: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (really) until `test()` holds."""
    async with asyncio.timeout(timeout):
        while True:
            if test():
                return
            await asyncio.sleep(0.02)


@asynccontextmanager
async def replica(harness: Harness, pg_dsn: str, **state: Any) -> AsyncIterator[Monitor]:
    """A monitor on the shared database, serving its probes; its keeper has answered once."""
    async with harness.monitor(**ha(pg_dsn, **state)) as monitor:
        await monitor.start_server()
        keeper = monitor.leadership.keeper
        assert keeper is not None
        await until(lambda: keeper.reachable)
        yield monitor


async def probe(monitor: Monitor, path: str) -> tuple[int, dict[str, Any]]:
    """GET a probe of the monitor's own server."""
    url = f"http://127.0.0.1:{monitor.server_port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, json.loads(await response.text())


def leader_gauge(monitor: Monitor) -> float | None:
    return monitor.metrics.registry.get_sample_value("dli_monitor_leader")


def changes(monitor: Monitor, reason: str) -> float | None:
    labels = {"reason": reason}
    return monitor.metrics.registry.get_sample_value("dli_monitor_leader_changes_total", labels)


async def test_exactly_one_replica_polls_and_the_standby_says_so(
    harness: Harness, pg_dsn: str
) -> None:
    harness.world.add_job(queue="etl", name="x", state="running")
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(replica(harness, pg_dsn))
        assert await a.leadership.wait_leading(5)
        b = await stack.enter_async_context(replica(harness, pg_dsn))
        assert not await b.leadership.wait_leading(1.5)  # a keeps renewing
        before = len(harness.world.requests)
        standby = await b.run_cycle()
        assert len(harness.world.requests) == before  # the standby touched nothing
        assert [r.reason for r in standby.results] == [STANDBY_REASON]
        leader = await a.run_cycle()
        assert leader.ok and leader.results[0].baseline
        assert len(harness.world.requests) > before
        a_ready, b_ready = await probe(a, "/readyz"), await probe(b, "/readyz")
        harness.clock.advance(3600)  # far past the freshness limit of a monitor that never polled
        b_health = await probe(b, "/healthz")
        gauges = (leader_gauge(a), leader_gauge(b))
    assert a_ready == (200, {**a_ready[1], "status": "ready", "role": "leader"})
    assert a_ready[1]["instance"] == a.leadership.holder
    assert b_ready == (200, {**b_ready[1], "status": "ready", "role": "standby"})
    assert b_ready[1]["instance"] == b.leadership.holder != a.leadership.holder
    assert b_health[0] == 200
    assert (b_health[1]["role"], b_health[1]["reason"]) == (
        "standby",
        "standby: another replica leads",
    )
    assert gauges == (1.0, 0.0)
    assert (changes(a, "acquired"), changes(b, "acquired")) == (1.0, 0.0)


async def test_a_leader_is_not_ready_before_its_first_cycle(harness: Harness, pg_dsn: str) -> None:
    async with replica(harness, pg_dsn) as a:
        assert await a.leadership.wait_leading(5)
        before = await probe(a, "/readyz")
        await a.run_cycle()
        after = await probe(a, "/readyz")
    assert (before[0], before[1]["role"]) == (503, "leader")
    assert (after[0], after[1]["role"]) == (200, "leader")


async def test_a_takeover_continues_from_the_stored_state_and_a_returning_leader_reloads_it(
    harness: Harness, pg_dsn: str
) -> None:
    world, receiver = harness.world, harness.receiver
    first = world.add_job(queue="etl", name="first", state="running")
    second = world.add_job(queue="etl", name="second", state="running")
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(replica(harness, pg_dsn))
        assert await a.leadership.wait_leading(5)
        b = await stack.enter_async_context(replica(harness, pg_dsn))
        assert (await a.run_cycle()).results[0].baseline
        world.set_state(first.id, "dead")
        assert (await a.run_cycle()).events == 1
        # a steps down (what SIGTERM does): b takes over at once and goes on from the store
        await a.leadership.stop()
        assert await b.leadership.wait_leading(5)
        world.set_state(second.id, "recovering")
        taken = await b.run_cycle()
        assert taken.ok and not taken.results[0].baseline and taken.events == 1
        world.set_state(second.id, "dead")
        assert (await b.run_cycle()).events == 1
        # a leads again: what it remembered (`second` running) is stale, so it must reload
        await b.leadership.stop()
        a.leadership.start()
        assert await a.leadership.wait_leading(5)
        back = await a.run_cycle()
        ids = receiver.event_ids()
        counted = (changes(a, "acquired"), changes(a, "released"), changes(b, "released"))
    assert back.ok and back.events == 0 and not back.results[0].baseline
    assert len(ids) == len(set(ids)) == 3
    senders = [r.headers[INSTANCE_HEADER] for r in receiver.received]
    assert senders == [a.leadership.holder, b.leadership.holder, b.leadership.holder]
    assert counted == (2.0, 1.0, 1.0)


async def test_a_deposed_leader_commits_nothing_delivers_nothing_and_says_so_once(
    harness: Harness, pg_dsn: str
) -> None:
    job = harness.world.add_job(queue="etl", name="x", state="running")
    # A long TTL: a's keeper renews every 10 s, so it still believes it leads after the theft.
    async with replica(harness, pg_dsn, lease_ttl="30s") as a:
        assert await a.leadership.wait_leading(5)
        await a.run_cycle()
        harness.world.set_state(job.id, "dead")
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(
                "UPDATE lease SET holder = 'intruder', token = token + 1,"
                " expires_at = now() + interval '1 minute'"
            )
            events_before = await conn.fetchval("SELECT count(*) FROM events")
            with capture_logs() as logs:
                deposed = await a.run_cycle()
                requests = len(harness.world.requests)
                again = await a.run_cycle()  # the fence is dead: nothing is even polled
            events_after = await conn.fetchval("SELECT count(*) FROM events")
        finally:
            await conn.close()
        assert len(harness.world.requests) == requests
        fence = a.leadership.keeper.fence if a.leadership.keeper else None
        assert fence is not None  # the keeper has not noticed yet; the guard has
        with pytest.raises(StoreFencedOff):
            await a.store.commit_poll("etl", upserts=(), removals=(), events=(), now=T0)
    assert [r.reason for r in deposed.results] == [STANDBY_REASON]
    assert [r.reason for r in again.results] == [STANDBY_REASON]
    assert events_after == events_before
    assert harness.receiver.received == []
    lost = [line for line in logs if line["event"].startswith("leadership lost")]
    assert len(lost) == 1 and lost[0]["log_level"] == "warning"
    assert not [line for line in logs if line["log_level"] == "error"]
    assert leader_gauge(a) == 0.0 and changes(a, "fenced") == 1.0


class CountingSink:
    """A sink that only counts what it is given."""

    name = "hook"

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        self.sent.append(notification)


async def test_a_dispatcher_asks_before_every_send_and_stops_once_not_leading() -> None:
    store = await open_store(":memory:")
    sink, leading = CountingSink(), [True, True]
    try:
        await commit(store, [event("j1"), event("j2"), event("j3")])
        dispatcher = Dispatcher(
            store, {"hook": sink}, clock=lambda: T0, may_send=lambda: bool(leading.pop())
        )
        leading.insert(0, False)  # leads for two sends, then no longer
        with pytest.raises(StoreFencedOff):
            await dispatcher.drain()
        pending = await store.pending_by_sink()
    finally:
        await store.close()
    assert len(sink.sent) == 2
    assert pending == {"hook": 1}


async def test_without_a_database_url_the_process_always_leads_as_before(harness: Harness) -> None:
    harness.world.add_job(queue="etl", name="x", state="running")
    async with harness.monitor(server={"enabled": True, "listen": "127.0.0.1:0"}) as monitor:
        await monitor.start_server()
        assert monitor.leadership.keeper is None and monitor.leadership.leading
        report = await monitor.run_cycle()
        status, body = await probe(monitor, "/readyz")
    assert report.ok
    assert (status, body) == (200, {"status": "ready", "ready": True, "role": "leader"})
    assert leader_gauge(monitor) == 1.0


async def test_a_transaction_a_frozen_leader_left_open_cannot_hold_the_takeover_back(
    harness: Harness, pg_dsn: str
) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(replica(harness, pg_dsn))
        assert await a.leadership.wait_leading(5)
        b = await stack.enter_async_context(replica(harness, pg_dsn))
        fence = a.leadership.fence()
        assert fence is not None
        pool = getattr(a.store, "pool")  # noqa: B009 - PostgreSQL only, not in the contract
        conn = await pool.acquire()
        try:
            await conn.execute("BEGIN")
            await check_fence(conn, fence)  # the lease row is now share-locked, as mid-commit
            started = time.monotonic()
            # a "freezes" here: no more renewals, and its release waits on that lock in vain
            await a.leadership.stop()
            assert await b.leadership.wait_leading(5), "the open transaction held b back"
            took = time.monotonic() - started
            with pytest.raises(DB_ERRORS):
                await conn.execute("COMMIT")  # the server ended the idle transaction
        finally:
            with contextlib.suppress(asyncpg.InterfaceError):  # gone with its session
                await pool.release(conn)
    assert took < 2 * TTL_S


async def test_once_against_a_database_another_replica_leads_polls_nothing(
    harness: Harness, pg_dsn: str
) -> None:
    from monitor.app import run_once

    async with replica(harness, pg_dsn) as a:
        assert await a.leadership.wait_leading(5)
        before = len(harness.world.requests)
        report = await run_once(harness.settings(**ha(pg_dsn)))
    assert len(harness.world.requests) == before
    assert not report.ok
    assert [(r.target, r.reason) for r in report.results] == [("etl", STANDBY_REASON)]
    assert "another replica holds the leader lease" in report.results[0].error
