"""The store contract, outbox and send log: due rows, marks, digests, deferrals, pruning.

Runs against every backend in `BACKENDS` (`conftest.py`), through the `Store` contract only.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.store import Store
from tests.store.support import T0, Reopen, commit, event


async def test_due_returns_pending_rows_oldest_event_first_up_to_the_limit(store: Store) -> None:
    await commit(store, [event("a"), event("b")], sinks=("s1", "s2"))
    await commit(store, [event("c")], sinks=("s1",), now=T0 + timedelta(seconds=1))
    rows = await store.due(T0 + timedelta(seconds=1))
    assert [(r.event.job.id, r.sink) for r in rows] == [
        ("a", "s1"),
        ("a", "s2"),
        ("b", "s1"),
        ("b", "s2"),
        ("c", "s1"),
    ]
    assert rows[0].attempts == 0 and rows[0].created_at == T0
    assert rows[0].event == event("a")
    assert len(await store.due(T0 + timedelta(seconds=1), limit=2)) == 2
    assert [r.event.job.id for r in await store.due(T0)] == ["a", "a", "b", "b"]
    assert {r.sink for r in await store.due(T0, exclude_sinks={"s1"})} == {"s2"}


async def test_due_can_be_limited_to_one_sink(store: Store) -> None:
    await commit(store, [event("a"), event("b")], sinks=("chat", "hook"))
    rows = await store.due(T0, sink="hook")
    assert [(r.event.job.id, r.sink) for r in rows] == [("a", "hook"), ("b", "hook")]


async def test_a_retried_row_waits_until_its_next_attempt(store: Store) -> None:
    e = event("a")
    await commit(store, [e])
    assert await store.next_due_at() == T0
    await store.mark_retry(
        e.event_id, "hook", next_attempt_at=T0 + timedelta(seconds=30), reason="boom"
    )
    assert await store.due(T0 + timedelta(seconds=29)) == []
    assert await store.next_due_at() == T0 + timedelta(seconds=30)
    (row,) = await store.due(T0 + timedelta(seconds=30))
    assert row.attempts == 1
    assert await store.outcome(e.event_id, "hook") == ("pending", 1, "boom")


async def test_delivered_and_failed_rows_are_no_longer_due(store: Store) -> None:
    a, b = event("a"), event("b")
    await commit(store, [a, b])
    await store.mark_delivered(a.event_id, "hook", T0)
    await store.mark_failed(b.event_id, "hook", reason="HTTP 400", now=T0)
    assert await store.due(T0 + timedelta(days=1)) == []
    assert await store.next_due_at() is None
    assert await store.pending_by_sink() == {}
    assert await store.outbox_summary() == {}
    assert await store.outcome(a.event_id, "hook") == ("delivered", 1, "")
    assert await store.outcome(b.event_id, "hook") == ("failed", 1, "HTTP 400")


async def test_failing_a_row_that_was_never_sent_does_not_count_an_attempt(store: Store) -> None:
    a = event("a")
    await commit(store, [a], sinks=("gone",))
    await store.mark_failed(a.event_id, "gone", reason="sink removed", now=T0, attempted=False)
    assert await store.outcome(a.event_id, "gone") == ("failed", 0, "sink removed")


async def test_marking_a_finished_row_again_changes_nothing(store: Store) -> None:
    a = event("a")
    await commit(store, [a])
    await store.mark_delivered(a.event_id, "hook", T0)
    await store.mark_failed(a.event_id, "hook", reason="late", now=T0)
    await store.mark_retry(a.event_id, "hook", next_attempt_at=T0, reason="late")
    assert await store.outcome(a.event_id, "hook") == ("delivered", 1, "")


async def test_marking_an_unknown_row_raises_key_error(store: Store) -> None:
    with pytest.raises(KeyError):
        await store.mark_delivered("nope", "hook", T0)
    with pytest.raises(KeyError):
        await store.mark_retry("nope", "hook", next_attempt_at=T0, reason="x")
    with pytest.raises(KeyError):
        await store.outcome("nope", "hook")


async def test_the_summary_counts_pending_rows_per_sink_with_the_oldest_event_time(
    store: Store,
) -> None:
    await commit(store, [event("a")], sinks=("chat", "hook"))
    later = T0 + timedelta(minutes=1)
    b = event("b")
    await commit(store, [b], sinks=("hook",), now=later)
    await store.mark_delivered(event("a").event_id, "hook", later)
    assert await store.outbox_summary() == {"chat": (1, T0), "hook": (1, later)}
    assert await store.pending_by_sink() == {"chat": 1, "hook": 1}


async def test_prune_deletes_only_finished_events_older_than_the_cutoff(store: Store) -> None:
    old_done, old_pending = event("a"), event("b")
    await commit(store, [old_done, old_pending])
    new_done = event("c")
    await commit(store, [new_done], now=T0 + timedelta(days=2))
    await store.mark_delivered(old_done.event_id, "hook", T0)
    await store.mark_delivered(new_done.event_id, "hook", T0 + timedelta(days=2))
    assert await store.prune(older_than=T0 + timedelta(days=1)) == 1
    with pytest.raises(KeyError):
        await store.outcome(old_done.event_id, "hook")
    assert (await store.outcome(old_pending.event_id, "hook"))[0] == "pending"
    assert (await store.outcome(new_done.event_id, "hook"))[0] == "delivered"


async def test_delivered_events_are_one_sinks_delivered_ones_since_a_time_oldest_first(
    store: Store,
) -> None:
    first, second, failed, pending = event("a"), event("b"), event("c"), event("d")
    await commit(store, [first, second, failed, pending], sinks=("am", "hook"))
    later = T0 + timedelta(hours=2)
    await store.mark_delivered(second.event_id, "am", later)  # delivered out of order
    await store.mark_delivered(first.event_id, "am", T0)
    await store.mark_failed(failed.event_id, "am", reason="HTTP 400", now=T0)
    await store.mark_delivered(pending.event_id, "hook", T0)  # another sink's delivery

    assert await store.delivered_events("am", None) == [first, second]
    assert await store.delivered_events("am", T0 + timedelta(hours=1)) == [second]
    assert await store.delivered_events("am", later + timedelta(seconds=1)) == []
    assert await store.delivered_events("hook", None) == [pending]
    assert await store.delivered_events("nobody", None) == []


# -- digests and rate budgets ---------------------------------------------------------------------


async def test_a_digest_marks_all_its_rows_in_one_go(store: Store) -> None:
    events = [event("a"), event("b"), event("c")]
    await commit(store, events)
    await store.mark_delivered_many([events[0].event_id, events[1].event_id], "hook", T0)
    await store.mark_failed_many([events[2].event_id], "hook", reason="HTTP 413", now=T0)
    assert await store.outcome(events[0].event_id, "hook") == ("delivered", 1, "")
    assert await store.outcome(events[1].event_id, "hook") == ("delivered", 1, "")
    assert await store.outcome(events[2].event_id, "hook") == ("failed", 1, "HTTP 413")
    assert await store.pending_by_sink() == {}


async def test_a_digest_retry_reschedules_each_row_to_its_own_time(store: Store) -> None:
    a, b = event("a"), event("b")
    await commit(store, [a, b])
    later = T0 + timedelta(seconds=30)
    await store.mark_retry_many(
        [(a.event_id, T0 + timedelta(seconds=5)), (b.event_id, later)], "hook", reason="HTTP 503"
    )
    assert [r.event.job.id for r in await store.due(T0 + timedelta(seconds=5))] == ["a"]
    assert await store.outcome(b.event_id, "hook") == ("pending", 1, "HTTP 503")


async def test_defer_holds_a_sinks_pending_rows_without_counting_an_attempt(store: Store) -> None:
    await commit(store, [event("a"), event("b")], sinks=("chat", "hook"))
    slot = T0 + timedelta(seconds=61)
    assert await store.defer("hook", slot) == 2
    assert [r.sink for r in await store.due(T0)] == ["chat", "chat"]
    assert await store.outcome(event("a").event_id, "hook") == ("pending", 0, "")
    assert await store.defer("hook", T0 + timedelta(seconds=10)) == 0  # never brings one forward
    assert {r.sink for r in await store.due(slot)} == {"chat", "hook"}


async def test_releasing_retries_makes_only_failed_waiting_rows_due_now(store: Store) -> None:
    a, b, c = event("a"), event("b"), event("c")
    await commit(store, [a, b, c])
    await store.mark_retry(a.event_id, "hook", next_attempt_at=T0 + timedelta(hours=1), reason="x")
    await store.defer("hook", T0 + timedelta(minutes=1))  # b and c: held, never attempted
    now = T0 + timedelta(seconds=10)
    assert await store.release_retries("hook", now) == 1
    assert [r.event.job.id for r in await store.due(now)] == ["a"]
    assert await store.outcome(a.event_id, "hook") == ("pending", 1, "x")


async def test_releasing_retries_beyond_a_time_leaves_the_nearer_waits_alone(store: Store) -> None:
    near, far = event("a"), event("b")
    await commit(store, [near, far])
    await store.mark_retry(
        near.event_id, "hook", next_attempt_at=T0 + timedelta(seconds=60), reason="x"
    )
    await store.mark_retry(
        far.event_id, "hook", next_attempt_at=T0 + timedelta(seconds=200), reason="y"
    )
    assert await store.release_retries("hook", T0, beyond=T0 + timedelta(seconds=90)) == 1
    assert [r.event.job.id for r in await store.due(T0)] == ["b"]
    assert [r.event.job.id for r in await store.due(T0 + timedelta(seconds=60))] == ["a", "b"]


async def test_send_times_survive_a_restart_and_old_ones_are_forgotten(
    store: Store, reopen: Reopen
) -> None:
    await store.record_send("ding", T0)
    await store.record_send("ding", T0 + timedelta(seconds=30))
    await store.record_send("slack", T0 + timedelta(seconds=30))
    await store.record_send("ding", T0 + timedelta(seconds=90), keep_s=60)
    await store.close()
    second = await reopen()
    assert await second.recent_sends("ding", T0 - timedelta(seconds=1)) == [
        T0 + timedelta(seconds=30),
        T0 + timedelta(seconds=90),
    ]
    assert await second.recent_sends("ding", T0 + timedelta(seconds=30)) == [
        T0 + timedelta(seconds=90)
    ]
    assert await second.recent_sends("slack", T0) == [T0 + timedelta(seconds=30)]
