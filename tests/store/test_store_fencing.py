"""PostgreSQL only: a store opened with a fence provider refuses leader-only writes once the lease
is lost, and nothing of a refused write reaches the database.

A real lease row (`monitor.leader.lease`) on a fresh database per test (`pg_dsn`): holder A takes
it, A's store commits; A's lease then runs out on the server's clock and B takes over (token + 1).
From then on A's `commit_poll`, claim (`due`) and every outbox state change raise
`StoreFencedOff` (a `StoreWriteError`), while B's writes, and anyone's reads and silences, work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import pytest

from monitor.leader.lease import (
    Fence,
    FencedOff,
    current_holder,
    ensure_schema,
    try_acquire,
)
from monitor.models import PollMark
from monitor.store import Store, StoreFencedOff, StoreWriteError, open_store
from monitor.store.postgres import PostgresStore
from tests.store.support import T0, commit, event, job

LEASE = "main"
LONG = 30.0  # a TTL that never runs out during a test
SHORT = 0.3  # a TTL the test waits out on the server's clock

FencedWrite = Callable[[Store], Awaitable[object]]


@dataclass
class Lease:
    """The lease row as the test drives it, and the fence each holder last got."""

    conn: asyncpg.Connection
    fences: dict[str, Fence | None]

    async def take(self, holder: str, ttl_s: float = LONG) -> Fence:
        token = await try_acquire(self.conn, LEASE, holder, ttl_s)
        assert token is not None, f"{holder} could not take the lease"
        self.fences[holder] = Fence(LEASE, holder, token)
        return Fence(LEASE, holder, token)

    async def expire_and_hand_to(self, holder: str) -> Fence:
        """Let the current holder's lease run out on the server's clock, then `holder` takes it."""
        current = await current_holder(self.conn, LEASE)
        assert current is not None
        await try_acquire(self.conn, LEASE, current[0], SHORT)
        for _ in range(100):
            if await current_holder(self.conn, LEASE) is None:
                return await self.take(holder)
            await asyncio.sleep(0.02)
        raise AssertionError("the lease never expired")

    def provider(self, holder: str) -> Callable[[], Fence | None]:
        """What a holder's store asks: the fence that holder last got (it never learns more)."""
        return lambda: self.fences.get(holder)


@pytest.fixture
async def lease(pg_dsn: str) -> AsyncIterator[Lease]:
    """The lease table on the test's database, with a connection to drive it."""
    conn = await asyncpg.connect(pg_dsn, timeout=5, command_timeout=5)
    await ensure_schema(conn)
    try:
        yield Lease(conn, {})
    finally:
        await conn.close()


@pytest.fixture
async def stores(pg_dsn: str, lease: Lease) -> AsyncIterator[tuple[Store, Store]]:
    """A's and B's stores over the same database, each fenced by its own holder's fence."""
    a = await open_store(pg_dsn, fence=lease.provider("A"))
    b = await open_store(pg_dsn, fence=lease.provider("B"))
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


FENCED_WRITES: dict[str, FencedWrite] = {
    "commit_poll": lambda s: commit(s, [event("new")], upserts=(job("new"),)),
    "due": lambda s: s.due(T0),
    "mark_delivered": lambda s: s.mark_delivered(event("a").event_id, "hook", T0),
    "mark_retry": lambda s: s.mark_retry(
        event("a").event_id, "hook", next_attempt_at=T0 + timedelta(minutes=1), reason="x"
    ),
    "mark_failed": lambda s: s.mark_failed(event("a").event_id, "hook", reason="x", now=T0),
    "mark_delivered_many": lambda s: s.mark_delivered_many([event("a").event_id], "hook", T0),
    "mark_failed_many": lambda s: s.mark_failed_many(
        [event("a").event_id], "hook", reason="x", now=T0
    ),
    "mark_retry_many": lambda s: s.mark_retry_many(
        [(event("a").event_id, T0 + timedelta(minutes=1))], "hook", reason="x"
    ),
    "defer": lambda s: s.defer("hook", T0 + timedelta(hours=1)),
    "release_retries": lambda s: s.release_retries("hook", T0),
}


async def test_the_leader_commits_claims_and_marks_through_its_fence(
    lease: Lease, stores: tuple[Store, Store]
) -> None:
    a, _ = stores
    await lease.take("A")
    assert await commit(a, [event("a")], upserts=(job("a"),)) == [event("a")]
    (row,) = await a.due(T0)
    assert row.event == event("a")
    await a.mark_delivered(event("a").event_id, "hook", T0)
    assert await a.outcome(event("a").event_id, "hook") == ("delivered", 1, "")


async def test_after_a_takeover_the_old_leader_can_neither_commit_nor_claim_nor_deliver(
    lease: Lease, stores: tuple[Store, Store]
) -> None:
    a, b = stores
    await lease.take("A")
    await commit(a, [event("a")], upserts=(job("a"),))
    b_fence = await lease.expire_and_hand_to("B")
    assert b_fence.token == 2

    with pytest.raises(StoreFencedOff, match="now held by B with token 2") as raised:
        await commit(a, [event("new")], upserts=(job("new"),), removals=("a",))
    assert isinstance(raised.value, StoreWriteError)
    assert isinstance(raised.value.__cause__, FencedOff)
    with pytest.raises(StoreFencedOff):
        await a.mark_delivered(event("a").event_id, "hook", T0)
    with pytest.raises(StoreFencedOff):
        await a.due(T0)

    # nothing of A's refused writes is in the database
    state = await b.load_target("etl")
    assert state is not None and state.jobs == {"a": job("a")}
    assert await b.outcome(event("a").event_id, "hook") == ("pending", 0, "")
    assert await b.pending_by_sink() == {"hook": 1}
    # B's writes work, and the event A could not commit is news to B
    assert await commit(b, [event("new")], upserts=(job("new"),)) == [event("new")]
    assert [r.event.job.id for r in await b.due(T0)] == ["a", "new"]
    await b.mark_delivered(event("a").event_id, "hook", T0)
    assert await b.outcome(event("a").event_id, "hook") == ("delivered", 1, "")


@pytest.mark.parametrize("write", list(FENCED_WRITES))
async def test_every_leader_only_write_of_a_deposed_leader_is_refused_and_changes_nothing(
    lease: Lease, stores: tuple[Store, Store], write: str
) -> None:
    a, b = stores
    await lease.take("A")
    await commit(a, [event("a")], upserts=(job("a"),))
    await lease.expire_and_hand_to("B")
    before = await _everything(b)
    with pytest.raises(StoreFencedOff, match="fenced off"):
        await FENCED_WRITES[write](a)
    assert await _everything(b) == before


async def test_an_expired_lease_nobody_took_fences_off_its_holder(
    lease: Lease, stores: tuple[Store, Store]
) -> None:
    a, _ = stores
    await lease.take("A", SHORT)
    for _ in range(100):
        if await current_holder(lease.conn, LEASE) is None:
            break
        await asyncio.sleep(0.02)
    with pytest.raises(StoreFencedOff, match="it has expired"):
        await commit(a, [event("a")])
    assert await a.targets() == []


async def test_a_store_whose_provider_says_not_leader_refuses_without_asking_the_database(
    stores: tuple[Store, Store],
) -> None:
    a, _ = stores  # nobody took the lease: A's provider returns None
    with pytest.raises(StoreFencedOff, match="does not hold the leader lease"):
        await commit(a, [event("a")], upserts=(job("a"),))
    with pytest.raises(StoreFencedOff):
        await a.due(T0)
    assert await a.load_target("etl") is None


async def test_reads_silences_and_send_times_are_not_fenced(stores: tuple[Store, Store]) -> None:
    a, _ = stores  # not the leader
    added = await a.add_silence(job_name="x", starts_at=T0, ends_at=T0 + timedelta(hours=1))
    assert await a.active_silences(T0) == [added]
    assert await a.expire_silence(added.id, T0 + timedelta(minutes=1)) is True
    await a.record_send("hook", T0)
    assert await a.recent_sends("hook", T0 - timedelta(seconds=1)) == [T0]
    assert await a.prune(older_than=T0) == 0
    assert await a.pending_by_sink() == {}


async def test_an_object_holding_a_fence_is_a_provider_too(pg_dsn: str, lease: Lease) -> None:
    @dataclass
    class Keeper:
        fence: Fence | None = None

    keeper = Keeper()
    store = await open_store(pg_dsn, fence=keeper)
    try:
        assert isinstance(store, PostgresStore) and store.fenced
        with pytest.raises(StoreFencedOff):
            await commit(store, [])
        keeper.fence = await lease.take("A")
        await commit(store, [])
        assert await store.targets() == ["etl"]
    finally:
        await store.close()


async def test_an_unfenced_store_needs_no_lease_table(pg_dsn: str) -> None:
    store = await open_store(pg_dsn)
    try:
        assert isinstance(store, PostgresStore) and not store.fenced
        await store.commit_poll(
            "etl", upserts=(), removals=(), events=(), now=T0, mark=PollMark(T0, None)
        )
        assert await store.poll_mark("etl") == PollMark(T0, None)
    finally:
        await store.close()


async def _everything(store: Store) -> object:
    """What the contract's reads say about target `etl` and the outbox."""
    return (
        await store.load_target("etl"),
        await store.poll_mark("etl"),
        await store.pending_by_sink(),
        await store.next_due_at(),
        await store.outcome(event("a").event_id, "hook"),
        await store.load_rule_memory("etl"),
    )
