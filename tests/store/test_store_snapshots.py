"""The store contract, snapshots: one-transaction commits, idempotent events, poll marks.

Runs against every backend in `BACKENDS` (`conftest.py`), through the `Store` contract only.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from monitor.models import JobState, PollMark
from monitor.store import Store
from tests.store.support import T0, Reopen, commit, event, job


async def test_a_target_has_no_state_until_its_first_commit(store: Store) -> None:
    assert await store.load_target("etl") is None
    assert await store.targets() == []
    assert await store.poll_mark("etl") is None


async def test_a_committed_snapshot_loads_back_equal(store: Store) -> None:
    jobs = (job("a"), job("b", JobState.SUCCESS, log_tail=("x", "y"), duration_ms=5))
    await commit(store, [], upserts=jobs)
    state = await store.load_target("etl")
    assert state is not None
    assert state.jobs == {"a": jobs[0], "b": jobs[1]}
    assert state.baseline_at == T0
    assert await store.targets() == ["etl"]


async def test_an_empty_first_commit_still_marks_the_baseline_done(store: Store) -> None:
    await commit(store, [])
    state = await store.load_target("etl")
    assert state is not None and state.jobs == {}


async def test_later_commits_update_and_remove_rows_and_keep_the_first_baseline_time(
    store: Store,
) -> None:
    await commit(store, [], upserts=(job("a"), job("b")))
    later = T0 + timedelta(minutes=5)
    await commit(store, [], upserts=(job("a", JobState.DEAD),), removals=("b",), now=later)
    state = await store.load_target("etl")
    assert state is not None
    assert state.jobs == {"a": job("a", JobState.DEAD)}
    assert state.baseline_at == T0


async def test_targets_are_kept_apart(store: Store) -> None:
    await commit(store, [], upserts=(job("a"),), target="etl")
    await commit(store, [], upserts=(job("b"),), target="adhoc")
    etl, adhoc = await store.load_target("etl"), await store.load_target("adhoc")
    assert etl is not None and list(etl.jobs) == ["a"]
    assert adhoc is not None and list(adhoc.jobs) == ["b"]
    assert await store.targets() == ["adhoc", "etl"]


async def test_loading_for_incremental_polling_leaves_out_jobs_that_ended_long_ago(
    store: Store,
) -> None:
    recent, old = T0 + timedelta(minutes=30), T0 - timedelta(days=1)
    jobs = (
        job("active", JobState.RUNNING, state_since=old),
        job("ended-recently", JobState.DEAD, state_since=recent),
        job("ended-long-ago", JobState.SUCCESS, state_since=old),
    )
    await commit(store, [], upserts=jobs)
    state = await store.load_target("etl", ended_since=T0)
    assert state is not None and set(state.jobs) == {"active", "ended-recently"}
    assert await store.count_jobs("etl") == {
        ("etl", "running"): 1,
        ("etl", "dead"): 1,
        ("etl", "success"): 1,
    }


async def test_lookup_finds_stored_jobs_history_included_and_skips_unknown_ids(
    store: Store,
) -> None:
    await commit(store, [], upserts=(job("a"), job("b", JobState.SUCCESS)))
    ids = ["b", "nope", *(f"x{n}" for n in range(1200))]  # more ids than one query binds
    assert await store.lookup_jobs("etl", ids) == {"b": job("b", JobState.SUCCESS)}
    assert await store.lookup_jobs("adhoc", ["a"]) == {}
    assert await store.lookup_jobs("etl", []) == {}


async def test_a_poll_mark_is_committed_with_the_snapshot_and_replaced_by_the_next(
    store: Store,
) -> None:
    first = PollMark(high_water=T0, baseline_floor=T0 - timedelta(hours=1))
    await store.commit_poll("etl", upserts=(), removals=(), events=(), now=T0, mark=first)
    assert await store.poll_mark("etl") == first
    second = PollMark(high_water=T0 + timedelta(minutes=1), baseline_floor=None)
    await store.commit_poll("etl", upserts=(), removals=(), events=(), now=T0, mark=second)
    assert await store.poll_mark("etl") == second


async def test_without_a_mark_the_high_water_is_the_newest_stored_create_time(
    store: Store,
) -> None:
    newest = T0 + timedelta(minutes=3)
    await commit(
        store, [], upserts=(job("a", create_time=T0), job("b", create_time=newest), job("c"))
    )
    assert await store.poll_mark("etl") == PollMark(high_water=newest, baseline_floor=None)


async def test_a_duplicate_event_id_is_ignored_and_left_out_of_the_result(store: Store) -> None:
    first = event("a")
    assert await commit(store, [first]) == [first]
    again = dataclasses.replace(first, observed_at=T0 + timedelta(minutes=1))
    other = event("b")
    assert await commit(store, [again, other], now=T0 + timedelta(minutes=1)) == [other]
    assert await commit(store, [other, other]) == []
    assert await store.pending_by_sink() == {"hook": 2}


async def test_one_outbox_row_is_written_per_new_event_and_sink(store: Store) -> None:
    await commit(store, [event("a"), event("b")], sinks=("hook", "chat", "hook"))
    assert await store.pending_by_sink() == {"chat": 2, "hook": 2}


async def test_routing_picks_each_new_events_sinks_and_their_earliest_first_attempt(
    store: Store,
) -> None:
    later = T0 + timedelta(hours=8)
    asked: list[str] = []

    def routing(ev: object) -> list[tuple[str, datetime]]:
        asked.append(getattr(ev, "event_id", ""))
        return [("chat", later), ("hook", T0), ("chat", T0 + timedelta(hours=1))]

    a = event("a")
    await store.commit_poll("etl", upserts=(), removals=(), events=[a], now=T0, routing=routing)
    await store.commit_poll("etl", upserts=(), removals=(), events=[a], now=T0, routing=routing)
    assert asked == [a.event_id]  # asked for new events only
    assert [r.sink for r in await store.due(T0)] == ["hook"]
    assert [r.sink for r in await store.due(T0 + timedelta(hours=1))] == ["chat", "hook"]


async def test_an_event_routed_nowhere_is_recorded_but_never_due(store: Store) -> None:
    a = event("a")
    inserted = await store.commit_poll(
        "etl", upserts=(), removals=(), events=[a], now=T0, routing=lambda _: ()
    )
    assert inserted == [a]
    assert await store.due(T0 + timedelta(days=1)) == []
    assert await commit(store, [a]) == []  # still known: never news twice


async def test_a_bad_event_rolls_back_the_snapshot_and_every_other_event(store: Store) -> None:
    await commit(store, [], upserts=(job("a"),))
    naive = dataclasses.replace(event("c"), observed_at=datetime(2026, 11, 29, 10, 0))
    with pytest.raises(ValueError, match="naive"):
        await commit(
            store,
            [event("b"), naive],
            upserts=(job("a", JobState.DEAD), job("new")),
            removals=("a",),
        )
    state = await store.load_target("etl")
    assert state is not None and state.jobs == {"a": job("a")}
    assert await store.pending_by_sink() == {}
    assert await store.due(T0 + timedelta(days=1)) == []
    # the rolled-back event was not recorded as seen: committing it again inserts it
    assert await commit(store, [event("b")]) == [event("b")]


async def test_a_failed_first_commit_leaves_the_target_without_a_baseline(store: Store) -> None:
    with pytest.raises(ValueError, match="belongs to target"):
        await commit(store, [event("a", target="adhoc")], upserts=(job("a"),))
    assert await store.load_target("etl") is None
    assert await store.targets() == []


async def test_a_failed_commit_moves_no_poll_mark(store: Store) -> None:
    mark = PollMark(high_water=T0, baseline_floor=None)
    await store.commit_poll("etl", upserts=(), removals=(), events=(), now=T0, mark=mark)
    moved = PollMark(high_water=T0 + timedelta(hours=1), baseline_floor=None)
    with pytest.raises(ValueError):
        await store.commit_poll(
            "etl", upserts=(), removals=(), events=[event("a", target="x")], now=T0, mark=moved
        )
    assert await store.poll_mark("etl") == mark


async def test_a_restart_keeps_snapshot_outbox_and_known_events(
    store: Store, reopen: Reopen
) -> None:
    a, b = event("a"), event("b")
    await commit(store, [a, b], upserts=(job("a"),))
    await store.mark_retry(
        a.event_id, "hook", next_attempt_at=T0 + timedelta(seconds=5), reason="x"
    )
    await store.close()

    second = await reopen()
    state = await second.load_target("etl")
    assert state is not None and state.jobs == {"a": job("a")}
    assert [(r.event, r.attempts) for r in await second.due(T0 + timedelta(seconds=5))] == [
        (a, 1),
        (b, 0),
    ]
    assert await commit(second, [a]) == []  # still known after the restart
