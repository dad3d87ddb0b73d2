"""The leader lease against a real PostgreSQL server (`pg_dsn`: a fresh database per test).

Expiry is judged by the server's clock, so the tests that need a lease to expire use a short TTL
(0.3 s) and wait for the server to say it has expired. The keeper's own deadline runs on an
injected monotonic clock wherever the test drives it by hand (`run_once`); only the race, the
killed connection and the takeover after `stop` use the real clock, with TTLs under a second.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable

import asyncpg
import pytest
from structlog.testing import capture_logs

from monitor.leader import (
    Fence,
    FencedOff,
    LeaseError,
    LeaseKeeper,
    check_fence,
    current_holder,
    ensure_schema,
    make_holder_id,
    release,
    try_acquire,
)
from tests.pg_server import free_port

LONG = 30.0  # a TTL that never runs out during a test
SHORT = 0.3  # a TTL the tests wait out on the server's clock


async def connect(dsn: str, **settings: str) -> asyncpg.Connection:
    """A connection with short timeouts, so a broken test fails fast instead of hanging."""
    return await asyncpg.connect(dsn, timeout=5, command_timeout=5, server_settings=settings)


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database, with the lease table in place."""
    connection = await connect(pg_dsn)
    await ensure_schema(connection)
    yield connection
    await connection.close()


async def wait_until_expired(conn: asyncpg.Connection, name: str = "main") -> None:
    """Wait until the server's clock has passed the lease's `expires_at`."""
    for _ in range(100):
        if await current_holder(conn, name) is None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the lease never expired")


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def no_sleep(_seconds: float) -> None:
    """The keeper's sleep when a test calls `run_once` itself and never `run`."""
    raise AssertionError("run() is not used with this clock")


def manual_keeper(
    dsn: str, holder: str, clock: ManualClock, ttl_s: float = LONG, **settings: str
) -> tuple[LeaseKeeper, list[tuple[bool, str]]]:
    """A keeper on the manual clock, and the list its on_change callback records into."""

    def opener() -> Awaitable[asyncpg.Connection]:
        return connect(dsn, **settings)

    keeper = LeaseKeeper(opener, "main", holder, ttl_s, clock=clock, sleep=no_sleep)
    changes: list[tuple[bool, str]] = []
    keeper.on_change(lambda leading, reason: changes.append((leading, reason)))
    return keeper, changes


# --- the lease row -------------------------------------------------------------------------


async def test_the_first_holder_gets_token_one(conn: asyncpg.Connection) -> None:
    assert await try_acquire(conn, "main", "a", LONG) == 1
    assert await current_holder(conn, "main") == ("a", 1)


async def test_a_second_holder_gets_nothing_while_the_lease_is_live(
    conn: asyncpg.Connection,
) -> None:
    await try_acquire(conn, "main", "a", LONG)
    assert await try_acquire(conn, "main", "b", LONG) is None
    assert await current_holder(conn, "main") == ("a", 1)


async def test_leases_with_different_names_are_independent(conn: asyncpg.Connection) -> None:
    assert await try_acquire(conn, "shard-0", "a", LONG) == 1
    assert await try_acquire(conn, "shard-1", "b", LONG) == 1


async def test_after_expiry_the_next_holder_takes_over_with_the_next_token(
    conn: asyncpg.Connection,
) -> None:
    await try_acquire(conn, "main", "a", SHORT)
    await wait_until_expired(conn)
    assert await try_acquire(conn, "main", "b", LONG) == 2
    assert await try_acquire(conn, "main", "a", LONG) is None


async def test_renewal_keeps_the_token_and_pushes_the_expiry_out(
    conn: asyncpg.Connection,
) -> None:
    expiry = "SELECT expires_at FROM lease WHERE name = 'main'"
    assert await try_acquire(conn, "main", "a", 5) == 1
    first = await conn.fetchval(expiry)
    assert await try_acquire(conn, "main", "a", 10) == 1
    assert await conn.fetchval(expiry) > first


async def test_the_same_holder_gets_its_token_back_after_its_own_lease_expired(
    conn: asyncpg.Connection,
) -> None:
    await try_acquire(conn, "main", "a", SHORT)
    await wait_until_expired(conn)
    assert await try_acquire(conn, "main", "a", LONG) == 1  # nobody held it in between


async def test_a_ttl_must_be_positive(conn: asyncpg.Connection) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        await try_acquire(conn, "main", "a", 0)


async def test_ensure_schema_is_idempotent_even_when_replicas_race(pg_dsn: str) -> None:
    conns = [await connect(pg_dsn) for _ in range(4)]
    try:
        await asyncio.gather(*(ensure_schema(c) for c in conns))
        await ensure_schema(conns[0])
        assert await try_acquire(conns[1], "main", "a", LONG) == 1
    finally:
        await asyncio.gather(*(c.close() for c in conns))


async def test_holder_ids_name_the_host_and_process_and_differ_per_call() -> None:
    host, pid, nonce = make_holder_id().split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert len(nonce) == 8
    assert make_holder_id() != make_holder_id()


# --- fencing -------------------------------------------------------------------------------


@pytest.fixture
async def outbox(conn: asyncpg.Connection) -> asyncpg.Connection:
    """A table standing for the store's writes that only the leader may commit."""
    await conn.execute("CREATE TABLE outbox (id int PRIMARY KEY, written_by text NOT NULL)")
    return conn


async def test_the_holder_passes_the_fence_and_commits_its_write(
    outbox: asyncpg.Connection,
) -> None:
    fence = Fence("main", "a", await try_acquire(outbox, "main", "a", LONG) or 0)
    async with outbox.transaction():
        await check_fence(outbox, fence)
        await outbox.execute("INSERT INTO outbox VALUES (1, 'a')")
    assert await outbox.fetchval("SELECT count(*) FROM outbox") == 1


async def test_a_deposed_holder_is_fenced_off_and_its_write_is_not_committed(
    pg_dsn: str, outbox: asyncpg.Connection
) -> None:
    old = Fence("main", "a", await try_acquire(outbox, "main", "a", SHORT) or 0)
    await wait_until_expired(outbox)
    assert await try_acquire(outbox, "main", "b", LONG) == 2
    deposed = await connect(pg_dsn)
    try:
        with pytest.raises(FencedOff) as caught:
            async with deposed.transaction():
                await deposed.execute("INSERT INTO outbox VALUES (1, 'a')")
                await check_fence(deposed, old)
    finally:
        await deposed.close()
    assert await outbox.fetchval("SELECT count(*) FROM outbox") == 0
    assert isinstance(caught.value, LeaseError)
    assert (caught.value.current_holder, caught.value.current_token) == ("b", 2)
    message = str(caught.value)
    assert "held by a with token 1" in message
    assert "now held by b with token 2" in message


async def test_an_expired_lease_fences_off_its_own_holder(outbox: asyncpg.Connection) -> None:
    fence = Fence("main", "a", await try_acquire(outbox, "main", "a", SHORT) or 0)
    await wait_until_expired(outbox)
    with pytest.raises(FencedOff, match="expired"):
        async with outbox.transaction():
            await check_fence(outbox, fence)


async def test_a_fence_check_outside_a_transaction_is_refused(conn: asyncpg.Connection) -> None:
    fence = Fence("main", "a", await try_acquire(conn, "main", "a", LONG) or 0)
    with pytest.raises(RuntimeError, match="inside the transaction"):
        await check_fence(conn, fence)


async def test_a_takeover_waits_until_a_write_that_passed_the_fence_has_committed(
    pg_dsn: str, outbox: asyncpg.Connection
) -> None:
    fence = Fence("main", "a", await try_acquire(outbox, "main", "a", SHORT) or 0)
    standby = await connect(pg_dsn)
    try:
        async with outbox.transaction():
            await check_fence(outbox, fence)
            await wait_until_expired(standby)
            takeover = asyncio.create_task(try_acquire(standby, "main", "b", LONG))
            await asyncio.sleep(0.1)
            assert not takeover.done()  # blocked behind the fenced transaction's share lock
            await outbox.execute("INSERT INTO outbox VALUES (1, 'a')")
        assert await takeover == 2
    finally:
        await standby.close()
    assert await outbox.fetchval("SELECT written_by FROM outbox") == "a"


# --- release -------------------------------------------------------------------------------


async def test_release_lets_another_holder_take_over_at_once(conn: asyncpg.Connection) -> None:
    fence = Fence("main", "a", await try_acquire(conn, "main", "a", LONG) or 0)
    assert await release(conn, fence) is True
    assert await try_acquire(conn, "main", "b", LONG) == 2
    assert await release(conn, fence) is False  # no longer ours: nothing changes
    assert await current_holder(conn, "main") == ("b", 2)


# --- the keeper, driven by hand on a manual clock ------------------------------------------


async def test_a_keeper_acquires_then_renews_without_changing_its_token(pg_dsn: str) -> None:
    clock = ManualClock()
    with capture_logs() as logs:
        keeper, changes = manual_keeper(pg_dsn, "a", clock)
        assert keeper.fence is None
        assert await keeper.run_once() is True
        first = keeper.fence
        clock.advance(LONG / 3)
        assert await keeper.run_once() is True
        await keeper.stop()
    assert first == Fence("main", "a", 1)
    assert changes == [(True, "acquired"), (False, "released")]
    events = [e["event"] for e in logs if e["event"].startswith("leadership")]
    assert events == ["leadership acquired", "leadership released"]


async def test_a_standby_keeper_stays_follower_while_another_holds_the_lease(
    pg_dsn: str, conn: asyncpg.Connection
) -> None:
    await try_acquire(conn, "main", "other", LONG)
    keeper, changes = manual_keeper(pg_dsn, "b", ManualClock())
    assert await keeper.run_once() is False
    await keeper.stop()
    assert changes == []
    assert await current_holder(conn, "main") == ("other", 1)


async def test_the_deadline_ends_leadership_even_while_a_renewal_hangs(
    pg_dsn: str, conn: asyncpg.Connection
) -> None:
    clock = ManualClock()
    keeper, changes = manual_keeper(pg_dsn, "a", clock, ttl_s=0.6)
    assert await keeper.run_once() is True
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM lease WHERE name = 'main' FOR UPDATE")
        renewal = asyncio.create_task(keeper.run_once())
        await wait_for_a_lock_waiter(conn)
        assert keeper.is_leader
        clock.advance(0.6)
        assert not keeper.is_leader  # at once, while the renewal is still stuck
        assert keeper.fence is None
        assert changes == [(True, "acquired")]
        assert await renewal is False  # the renewal gives up after the interval (0.2 s)
    assert changes[-1][0] is False
    assert changes[-1][1].startswith("renew failed: ")
    await keeper.stop()
    assert len(changes) == 2  # no second "lost" on stop


async def wait_for_a_lock_waiter(conn: asyncpg.Connection) -> None:
    """Wait until some session is blocked on a row lock."""
    for _ in range(100):
        if await conn.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("nobody ever waited for the lock")


async def test_a_keeper_learns_who_took_the_lease_from_it(
    pg_dsn: str, conn: asyncpg.Connection
) -> None:
    keeper, changes = manual_keeper(pg_dsn, "a", ManualClock(), ttl_s=SHORT)
    assert await keeper.run_once() is True
    await wait_until_expired(conn)  # e.g. the keeper's process was paused for a while
    assert await try_acquire(conn, "main", "b", LONG) == 2
    assert await keeper.run_once() is False
    await keeper.stop()
    assert changes == [(True, "acquired"), (False, "lease lost to b")]


async def test_database_errors_never_escape_and_are_logged_once(pg_dsn: str) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    with capture_logs() as logs:
        keeper, changes = manual_keeper(dead, "a", ManualClock())
        for _ in range(3):
            assert await keeper.run_once() is False
        await keeper.stop()
    assert changes == []
    failing = [e for e in logs if e["event"] == "lease call failing"]
    assert len(failing) == 1
    assert failing[0]["error"] in {"ConnectionRefusedError", "OSError"}


async def test_a_failing_callback_does_not_break_the_keeper(pg_dsn: str) -> None:
    keeper, changes = manual_keeper(pg_dsn, "a", ManualClock())

    def broken(_leading: bool, _reason: str) -> None:
        raise ZeroDivisionError

    remove = keeper.on_change(broken)
    with capture_logs() as logs:
        assert await keeper.run_once() is True
    remove()
    await keeper.stop()
    assert changes == [(True, "acquired"), (False, "released")]
    assert any(e["event"] == "leadership callback failed" for e in logs)


def test_the_interval_must_be_shorter_than_the_ttl() -> None:
    async def never() -> asyncpg.Connection:
        raise AssertionError

    with pytest.raises(ValueError, match="interval_s"):
        LeaseKeeper(never, "main", "a", 1.0, interval_s=1.0)


# --- keepers on the real clock -------------------------------------------------------------


async def test_two_racing_keepers_elect_exactly_one_leader(pg_dsn: str) -> None:
    a = LeaseKeeper(lambda: connect(pg_dsn), "main", "a", 0.6)
    b = LeaseKeeper(lambda: connect(pg_dsn), "main", "b", 0.6)
    async with a, b:
        waits = [asyncio.ensure_future(k.wait_leader()) for k in (a, b)]
        done, pending = await asyncio.wait(waits, timeout=2, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        (first,) = done
        leader, standby = (a, b) if a.is_leader else (b, a)
        for _ in range(8):  # across several renewals, still exactly one, the same one
            assert (leader.is_leader, standby.is_leader) == (True, False)
            await asyncio.sleep(0.05)
        token = first.result().token
        await leader.stop()  # steps down and releases: the standby takes over at once
        fence = await asyncio.wait_for(standby.wait_leader(), timeout=1)
        assert (fence.holder, fence.token) == (standby.holder, token + 1)


class Partition:
    """Opens real connections, or fails to (a port nobody listens on) while `down`."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
        self.down = False

    async def __call__(self) -> asyncpg.Connection:
        dsn = self.dead if self.down else self.dsn
        return await connect(dsn, application_name="keeper-under-test")


async def test_a_keeper_cut_off_loses_leadership_by_its_deadline_and_comes_back(
    pg_dsn: str, conn: asyncpg.Connection
) -> None:
    network = Partition(pg_dsn)
    keeper = LeaseKeeper(network, "main", "a", 0.6)
    changes: list[tuple[bool, str]] = []
    keeper.on_change(lambda leading, reason: changes.append((leading, reason)))
    async with keeper:
        fence = await asyncio.wait_for(keeper.wait_leader(), timeout=2)
        network.down = True
        killed = await conn.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'keeper-under-test'"
        )
        assert killed == 1
        cut = time.monotonic()
        await asyncio.wait_for(keeper.wait_not_leader(), timeout=2)
        assert time.monotonic() - cut < 0.6 + 0.15  # by its deadline, measured from before
        assert not keeper.is_leader
        assert changes[-1][1].startswith("renew failed: ")
        network.down = False
        again = await asyncio.wait_for(keeper.wait_leader(), timeout=2)
        assert again == fence  # nobody else took it meanwhile, so the token is unchanged
    assert [leading for leading, _ in changes] == [True, False, True, False]


class StopLoop(Exception):
    """Ends `LeaseKeeper.run` from inside the injected sleep."""


async def test_the_loop_renews_every_interval_and_wakes_up_at_its_deadline(
    pg_dsn: str, conn: asyncpg.Connection
) -> None:
    clock, network = ManualClock(), Partition(pg_dsn)
    naps: list[float] = []
    start = clock.now

    async def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:  # cut the keeper off after its first renewal
            network.down = True
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'keeper-under-test'"
            )
        if len(naps) == 4:
            raise StopLoop
        clock.advance(seconds)

    keeper = LeaseKeeper(network, "main", "a", 10, interval_s=4, clock=clock, sleep=sleep)
    changes: list[tuple[float, bool, str]] = []
    keeper.on_change(lambda leading, reason: changes.append((clock.now - start, leading, reason)))
    with pytest.raises(StopLoop):
        await keeper.run()
    await keeper.stop()
    assert naps == [4, 4, 2, 4]  # the third nap ends exactly at the deadline (10 s)
    assert changes[0] == (0, True, "acquired")
    when, leading, reason = changes[1]
    assert (when, leading) == (10, False)
    assert reason.startswith("renew failed: ")
