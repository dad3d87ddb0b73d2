"""The SQLite store: snapshots, idempotent events, one-transaction commits and the outbox."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.models import Event, EventKind, Job, JobState, event_id_for
from monitor.store import SCHEMA_VERSION, Store, StoreError

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)


def job(job_id: str, state: JobState = JobState.RUNNING, **changes: object) -> Job:
    return dataclasses.replace(
        Job(id=job_id, state=state, queue="etl", name=f"name-{job_id}", state_since=T0),
        **changes,
    )


def event(job_id: str, to_state: JobState = JobState.DEAD, *, target: str = "etl") -> Event:
    j = job(job_id, to_state)
    kind = EventKind.TRANSITION
    return Event(
        event_id=event_id_for(target, job_id, kind, JobState.RUNNING, to_state, T0),
        kind=kind,
        target=target,
        job=j,
        from_state=JobState.RUNNING,
        to_state=to_state,
        observed_at=T0,
    )


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.open(":memory:")
    yield s
    s.close()


def commit(
    store: Store,
    events: list[Event],
    *,
    upserts: tuple[Job, ...] = (),
    removals: tuple[str, ...] = (),
    sinks: tuple[str, ...] = ("hook",),
    now: datetime = T0,
    target: str = "etl",
) -> list[Event]:
    return store.commit_poll(
        target, upserts=upserts, removals=removals, events=events, sinks=sinks, now=now
    )


def test_a_target_has_no_state_until_its_first_commit(store: Store) -> None:
    assert store.load_target("etl") is None
    assert store.targets() == []


def test_a_committed_snapshot_loads_back_equal(store: Store) -> None:
    jobs = (job("a"), job("b", JobState.SUCCESS, log_tail=("x", "y"), duration_ms=5))
    commit(store, [], upserts=jobs)
    state = store.load_target("etl")
    assert state is not None
    assert state.jobs == {"a": jobs[0], "b": jobs[1]}
    assert state.baseline_at == T0
    assert store.targets() == ["etl"]


def test_an_empty_first_commit_still_marks_the_baseline_done(store: Store) -> None:
    commit(store, [])
    state = store.load_target("etl")
    assert state is not None and state.jobs == {}


def test_later_commits_update_and_remove_rows_and_keep_the_first_baseline_time(
    store: Store,
) -> None:
    commit(store, [], upserts=(job("a"), job("b")))
    later = T0 + timedelta(minutes=5)
    commit(store, [], upserts=(job("a", JobState.DEAD),), removals=("b",), now=later)
    state = store.load_target("etl")
    assert state is not None
    assert state.jobs == {"a": job("a", JobState.DEAD)}
    assert state.baseline_at == T0


def test_targets_are_kept_apart(store: Store) -> None:
    commit(store, [], upserts=(job("a"),), target="etl")
    commit(store, [], upserts=(job("b"),), target="adhoc")
    etl, adhoc = store.load_target("etl"), store.load_target("adhoc")
    assert etl is not None and list(etl.jobs) == ["a"]
    assert adhoc is not None and list(adhoc.jobs) == ["b"]
    assert store.targets() == ["adhoc", "etl"]


def test_a_duplicate_event_id_is_ignored_and_left_out_of_the_result(store: Store) -> None:
    first = event("a")
    assert commit(store, [first]) == [first]
    again = dataclasses.replace(first, observed_at=T0 + timedelta(minutes=1))
    other = event("b")
    assert commit(store, [again, other], now=T0 + timedelta(minutes=1)) == [other]
    assert commit(store, [other, other]) == []
    assert store.pending_by_sink() == {"hook": 2}


def test_one_outbox_row_is_written_per_new_event_and_sink(store: Store) -> None:
    commit(store, [event("a"), event("b")], sinks=("hook", "chat", "hook"))
    assert store.pending_by_sink() == {"chat": 2, "hook": 2}


def test_a_bad_event_rolls_back_the_snapshot_and_every_other_event(store: Store) -> None:
    commit(store, [], upserts=(job("a"),))
    naive = dataclasses.replace(event("c"), observed_at=datetime(2026, 11, 29, 10, 0))
    with pytest.raises(ValueError, match="naive"):
        commit(
            store,
            [event("b"), naive],
            upserts=(job("a", JobState.DEAD), job("new")),
            removals=("a",),
        )
    state = store.load_target("etl")
    assert state is not None and state.jobs == {"a": job("a")}
    assert store.pending_by_sink() == {}
    assert store.due(T0 + timedelta(days=1)) == []
    # the rolled-back event was not recorded as seen: committing it again inserts it
    assert commit(store, [event("b")]) == [event("b")]


def test_a_failed_first_commit_leaves_the_target_without_a_baseline(store: Store) -> None:
    with pytest.raises(ValueError, match="belongs to target"):
        commit(store, [event("a", target="adhoc")], upserts=(job("a"),))
    assert store.load_target("etl") is None
    assert store.targets() == []


def test_due_returns_pending_rows_oldest_event_first_up_to_the_limit(store: Store) -> None:
    commit(store, [event("a"), event("b")], sinks=("s1", "s2"))
    commit(store, [event("c")], sinks=("s1",), now=T0 + timedelta(seconds=1))
    rows = store.due(T0 + timedelta(seconds=1))
    assert [(r.event.job.id, r.sink) for r in rows] == [
        ("a", "s1"),
        ("a", "s2"),
        ("b", "s1"),
        ("b", "s2"),
        ("c", "s1"),
    ]
    assert rows[0].attempts == 0 and rows[0].created_at == T0
    assert rows[0].event == event("a")
    assert len(store.due(T0 + timedelta(seconds=1), limit=2)) == 2
    assert [r.event.job.id for r in store.due(T0)] == ["a", "a", "b", "b"]
    assert {r.sink for r in store.due(T0, exclude_sinks={"s1"})} == {"s2"}


def test_a_retried_row_waits_until_its_next_attempt(store: Store) -> None:
    e = event("a")
    commit(store, [e])
    assert store.next_due_at() == T0
    store.mark_retry(e.event_id, "hook", next_attempt_at=T0 + timedelta(seconds=30), reason="boom")
    assert store.due(T0 + timedelta(seconds=29)) == []
    assert store.next_due_at() == T0 + timedelta(seconds=30)
    (row,) = store.due(T0 + timedelta(seconds=30))
    assert row.attempts == 1
    assert store.outcome(e.event_id, "hook") == ("pending", 1, "boom")


def test_delivered_and_failed_rows_are_no_longer_due(store: Store) -> None:
    a, b = event("a"), event("b")
    commit(store, [a, b])
    store.mark_delivered(a.event_id, "hook", T0)
    store.mark_failed(b.event_id, "hook", reason="HTTP 400", now=T0)
    assert store.due(T0 + timedelta(days=1)) == []
    assert store.next_due_at() is None
    assert store.pending_by_sink() == {}
    assert store.outcome(a.event_id, "hook") == ("delivered", 1, "")
    assert store.outcome(b.event_id, "hook") == ("failed", 1, "HTTP 400")


def test_failing_a_row_that_was_never_sent_does_not_count_an_attempt(store: Store) -> None:
    a = event("a")
    commit(store, [a], sinks=("gone",))
    store.mark_failed(a.event_id, "gone", reason="sink removed", now=T0, attempted=False)
    assert store.outcome(a.event_id, "gone") == ("failed", 0, "sink removed")


def test_marking_a_finished_row_again_changes_nothing(store: Store) -> None:
    a = event("a")
    commit(store, [a])
    store.mark_delivered(a.event_id, "hook", T0)
    store.mark_failed(a.event_id, "hook", reason="late", now=T0)
    assert store.outcome(a.event_id, "hook") == ("delivered", 1, "")


def test_marking_an_unknown_row_raises_key_error(store: Store) -> None:
    with pytest.raises(KeyError):
        store.mark_delivered("nope", "hook", T0)
    with pytest.raises(KeyError):
        store.outcome("nope", "hook")


def test_prune_deletes_only_finished_events_older_than_the_cutoff(store: Store) -> None:
    old_done, old_pending = event("a"), event("b")
    commit(store, [old_done, old_pending])
    new_done = event("c")
    commit(store, [new_done], now=T0 + timedelta(days=2))
    store.mark_delivered(old_done.event_id, "hook", T0)
    store.mark_delivered(new_done.event_id, "hook", T0 + timedelta(days=2))
    assert store.prune(older_than=T0 + timedelta(days=1)) == 1
    with pytest.raises(KeyError):
        store.outcome(old_done.event_id, "hook")
    assert store.outcome(old_pending.event_id, "hook")[0] == "pending"
    assert store.outcome(new_done.event_id, "hook")[0] == "delivered"


def test_reopening_the_file_keeps_snapshot_and_outbox(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.db"
    first = Store.open(path)
    a, b = event("a"), event("b")
    commit(first, [a, b], upserts=(job("a"),))
    first.mark_retry(a.event_id, "hook", next_attempt_at=T0 + timedelta(seconds=5), reason="x")
    first.close()

    second = Store.open(path)
    try:
        state = second.load_target("etl")
        assert state is not None and state.jobs == {"a": job("a")}
        assert [(r.event, r.attempts) for r in second.due(T0 + timedelta(seconds=5))] == [
            (a, 1),
            (b, 0),
        ]
        assert commit(second, [a]) == []  # still known after the restart
    finally:
        second.close()


def test_the_file_uses_wal_and_records_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store.open(path).close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    raw.close()


def test_a_file_from_a_newer_monitor_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}.*newer monitor"):
        Store.open(path)


def test_a_file_that_is_not_a_database_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite, it is a text file that is long enough" * 20)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        Store.open(path)


# -- digests and rate budgets ---------------------------------------------------------------------


def test_due_can_be_limited_to_one_sink(store: Store) -> None:
    commit(store, [event("a"), event("b")], sinks=("chat", "hook"))
    rows = store.due(T0, sink="hook")
    assert [(r.event.job.id, r.sink) for r in rows] == [("a", "hook"), ("b", "hook")]


def test_a_digest_marks_all_its_rows_in_one_go(store: Store) -> None:
    events = [event("a"), event("b"), event("c")]
    commit(store, events)
    store.mark_delivered_many([events[0].event_id, events[1].event_id], "hook", T0)
    store.mark_failed_many([events[2].event_id], "hook", reason="HTTP 413", now=T0)
    assert store.outcome(events[0].event_id, "hook") == ("delivered", 1, "")
    assert store.outcome(events[1].event_id, "hook") == ("delivered", 1, "")
    assert store.outcome(events[2].event_id, "hook") == ("failed", 1, "HTTP 413")
    assert store.pending_by_sink() == {}


def test_a_digest_retry_reschedules_each_row_to_its_own_time(store: Store) -> None:
    a, b = event("a"), event("b")
    commit(store, [a, b])
    later = T0 + timedelta(seconds=30)
    store.mark_retry_many(
        [(a.event_id, T0 + timedelta(seconds=5)), (b.event_id, later)], "hook", reason="HTTP 503"
    )
    assert [r.event.job.id for r in store.due(T0 + timedelta(seconds=5))] == ["a"]
    assert store.outcome(b.event_id, "hook") == ("pending", 1, "HTTP 503")


def test_defer_holds_a_sinks_pending_rows_without_counting_an_attempt(store: Store) -> None:
    commit(store, [event("a"), event("b")], sinks=("chat", "hook"))
    slot = T0 + timedelta(seconds=61)
    assert store.defer("hook", slot) == 2
    assert [r.sink for r in store.due(T0)] == ["chat", "chat"]
    assert store.outcome(event("a").event_id, "hook") == ("pending", 0, "")
    assert store.defer("hook", T0 + timedelta(seconds=10)) == 0  # never brings a row forward
    assert {r.sink for r in store.due(slot)} == {"chat", "hook"}


def test_send_times_survive_reopening_and_old_ones_are_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = Store.open(path)
    first.record_send("ding", T0)
    first.record_send("ding", T0 + timedelta(seconds=30))
    first.record_send("slack", T0 + timedelta(seconds=30))
    first.record_send("ding", T0 + timedelta(seconds=90), keep_s=60)
    first.close()
    second = Store.open(path)
    try:
        assert second.recent_sends("ding", T0 - timedelta(seconds=1)) == [
            T0 + timedelta(seconds=30),
            T0 + timedelta(seconds=90),
        ]
        assert second.recent_sends("ding", T0 + timedelta(seconds=30)) == [
            T0 + timedelta(seconds=90)
        ]
    finally:
        second.close()
