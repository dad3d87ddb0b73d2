"""The store contract, trail: sightings, decisions, attempts and digests, read back per job.

What `dli-monitor explain` reads (`TrailStore`): the sightings `commit_poll` writes with a
poll, each new event's routing decision, one attempt per outbox row a mark changes (and per row
a `defer` with `now` moves), digest ids that grow and carry their size, and `prune`, which takes
all of it with old events (and old sightings of jobs the snapshot no longer holds). Runs
against every backend in `BACKENDS` (`conftest.py`), through the `Store` contract only.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from monitor.models import Event, JobState, Notification
from monitor.models_explain import Attempt, PlannedSink, RoutingRecord, Sighting, SilenceNote
from monitor.store import Store
from tests.store.support import T0, Reopen, commit, event, job

LATER = T0 + timedelta(minutes=10)


def seen(job_id: str, state: JobState, at: datetime = T0, **extra: object) -> Sighting:
    values: dict[str, object] = {"job_name": f"name-{job_id}", "queue": "etl", "cycle_id": "c1"}
    values.update(extra)
    return Sighting("etl", job_id, state, at, **values)  # type: ignore[arg-type]


def attempts_of(trail_events: tuple[object, ...]) -> list[tuple[str, int, str, str]]:
    return [
        (a.sink, a.attempt, a.outcome, a.answer)
        for record in trail_events
        for a in getattr(record, "attempts", ())
    ]


async def the_event(store: Store, job_id: str) -> tuple[Attempt, ...]:
    (trail,) = await store.job_trails(job_id)
    (record,) = trail.events
    return record.attempts


async def test_sightings_come_back_per_job_oldest_first_with_their_cycle(
    store: Store, reopen: Reopen
) -> None:
    await store.commit_poll(
        "etl",
        upserts=(job("a"),),
        removals=(),
        events=[],
        now=T0,
        sightings=[seen("a", JobState.STARTING, baseline=True, cycle_id="c0")],
    )
    await store.commit_poll(
        "etl",
        upserts=(job("a", JobState.DEAD),),
        removals=(),
        events=[],
        now=LATER,
        sightings=[seen("a", JobState.DEAD, LATER)],
    )
    (trail,) = await (await reopen()).job_trails("a")
    assert (trail.target, trail.job_id, trail.baseline_at) == ("etl", "a", T0)
    assert trail.job == job("a", JobState.DEAD)
    assert trail.sightings == (
        seen("a", JobState.STARTING, baseline=True, cycle_id="c0"),
        seen("a", JobState.DEAD, LATER),
    )
    assert trail.name == "name-a"
    assert await store.job_trails("nobody") == []


async def test_a_sighting_of_another_target_rolls_the_whole_commit_back(store: Store) -> None:
    stray = Sighting("adhoc", "a", JobState.RUNNING, T0)
    with pytest.raises(ValueError, match="belongs to 'adhoc'"):
        await store.commit_poll(
            "etl", upserts=(job("a"),), removals=(), events=[event("a")], now=T0, sightings=[stray]
        )
    assert await store.load_target("etl") is None
    assert await store.job_trails("a") == []


async def test_each_new_event_keeps_the_routing_record_it_was_given(store: Store) -> None:
    record = RoutingRecord(
        plan=(PlannedSink("ding", LATER, route=0, quiet_until=LATER),),
        matched=("#0 queue=etl",),
        rule="stuck: in starting for 17m (limit 15m)",
    )
    muted = RoutingRecord(silence=SilenceNote(3, LATER, "job_name=a.*"))
    a, b = event("a"), event("b")
    records = {a.event_id: record, b.event_id: muted}

    def routing(ev: Event) -> RoutingRecord:
        return records[ev.event_id]

    await store.commit_poll(
        "etl", upserts=(), removals=(), events=[a, b], now=T0, routing=routing, cycle_id="c7"
    )
    await store.commit_poll(  # known events: their first decision stays
        "etl", upserts=(), removals=(), events=[a], now=LATER, routing=lambda _: RoutingRecord()
    )
    (trail,) = await store.job_trails("a")
    (stored,) = trail.events
    assert (stored.event, stored.created_at, stored.cycle_id) == (a, T0, "c7")
    assert stored.routing == record
    assert [(o.sink, o.status, o.next_attempt_at) for o in stored.outbox] == [
        ("ding", "pending", LATER)
    ]
    (trail,) = await store.job_trails("b")
    assert trail.events[0].routing == muted and trail.events[0].outbox == ()


async def test_sinks_given_directly_are_kept_as_a_bare_plan(store: Store) -> None:
    await commit(store, [event("a")], sinks=("hook", "chat"))
    (trail,) = await store.job_trails("a")
    assert trail.events[0].routing == RoutingRecord(
        plan=(PlannedSink("hook", T0), PlannedSink("chat", T0))
    )


async def test_every_mark_records_one_attempt_with_its_answer_and_next_retry(
    store: Store,
) -> None:
    a = event("a")
    await commit(store, [a], sinks=("hook", "chat"))
    await store.mark_retry(
        a.event_id, "hook", next_attempt_at=LATER, reason="HTTP 503: busy", now=T0, kind="http_5xx"
    )
    await store.mark_delivered(a.event_id, "hook", LATER)
    await store.mark_delivered(a.event_id, "hook", LATER)  # finished: no second attempt
    await store.mark_failed(a.event_id, "chat", reason="sink removed", now=T0, attempted=False)
    assert await the_event(store, "a") == (
        Attempt(a.event_id, "hook", 1, T0, "retry", "HTTP 503: busy", "http_5xx", LATER),
        Attempt(a.event_id, "hook", 2, LATER, "delivered"),
        Attempt(a.event_id, "chat", 0, T0, "failed", "sink removed"),
    )


async def test_a_retry_marked_without_a_time_is_recorded_without_one(store: Store) -> None:
    a = event("a")
    await commit(store, [a])
    await store.mark_retry(a.event_id, "hook", next_attempt_at=LATER, reason="x")
    (attempt,) = await the_event(store, "a")
    assert (attempt.at, attempt.outcome, attempt.next_attempt_at) == (None, "retry", LATER)


async def test_digests_get_growing_ids_and_every_row_of_one_names_it(store: Store) -> None:
    events = [event(name) for name in "abcd"]
    await commit(store, events)
    first = Notification("hook", (events[0], events[1]))
    await store.mark_delivered_many([e.event_id for e in first.events], "hook", T0, digest=first)
    second = Notification("hook", (events[2], events[3]))
    await store.mark_failed(
        events[2].event_id, "hook", reason="too old", now=LATER, kind="http_5xx", digest=second
    )
    await store.mark_retry_many(
        [(events[3].event_id, LATER + timedelta(minutes=1))],
        "hook",
        reason="HTTP 502",
        now=LATER,
        digest=second,
    )
    found = {name: await the_event(store, name) for name in "abcd"}
    assert [(a.digest_id, a.digest_size, a.outcome) for name in "ab" for a in found[name]] == [
        (1, 2, "delivered"),
        (1, 2, "delivered"),
    ]
    assert [(a.digest_id, a.digest_size, a.outcome) for name in "cd" for a in found[name]] == [
        (2, 2, "failed"),
        (2, 2, "retry"),
    ]


async def test_a_deferral_with_a_time_records_each_row_it_moved(store: Store) -> None:
    a, b = event("a"), event("b")
    await commit(store, [a, b])
    await commit(store, [event("c")], now=LATER + timedelta(minutes=5))
    moved = await store.defer("hook", LATER, now=T0, reason="rate budget")
    assert moved == 2
    assert await the_event(store, "a") == (
        Attempt(a.event_id, "hook", 0, T0, "deferred", "rate budget", "", LATER),
    )
    assert await store.defer("hook", LATER + timedelta(minutes=1)) == 2  # no time: not recorded
    assert len(await the_event(store, "b")) == 1
    assert await the_event(store, "c") == ()


async def test_prune_takes_decisions_attempts_digests_and_old_sightings_of_gone_jobs(
    store: Store,
) -> None:
    old, kept = event("old"), event("kept")
    await store.commit_poll(
        "etl",
        upserts=(job("old"), job("kept")),
        removals=(),
        events=[old, kept],
        sinks=("hook",),
        now=T0,
        sightings=[seen("old", JobState.RUNNING), seen("kept", JobState.RUNNING)],
    )
    digest = Notification("hook", (old, kept))
    await store.mark_delivered_many([old.event_id, kept.event_id], "hook", T0, digest=digest)
    await store.commit_poll("etl", upserts=(), removals=("old",), events=[], now=LATER)
    assert await store.prune(older_than=T0 + timedelta(days=1)) == 2
    assert [t.sightings for t in await store.job_trails("old")] == []
    (trail,) = await store.job_trails("kept")
    assert trail.events == () and trail.sightings == (seen("kept", JobState.RUNNING),)
    await commit(store, [event("new")], now=LATER)
    again = Notification("hook", (event("new"), event("new2")))
    await store.mark_delivered_many([event("new").event_id], "hook", LATER, digest=again)
    assert (await the_event(store, "new"))[0].digest_id == 2  # ids are never reused


async def test_a_name_finds_the_newest_runs_by_creation_then_first_sighting(
    store: Store,
) -> None:
    runs = [
        job("r1", name="nightly", create_time=T0 - timedelta(days=2)),
        job("r2", name="nightly", create_time=T0 - timedelta(days=1)),
        job("r3", name="nightly", create_time=T0),
        job("other", name="hourly", create_time=T0),
    ]
    await store.commit_poll(
        "etl",
        upserts=runs,
        removals=(),
        events=[],
        now=T0,
        sightings=[seen(j.id, j.state, job_name=j.name) for j in runs],
    )
    await store.commit_poll(  # only sighted: the job left the snapshot, its sightings stay
        "adhoc",
        upserts=(),
        removals=(),
        events=[],
        now=LATER,
        sightings=[Sighting("adhoc", "r4", JobState.DEAD, LATER, job_name="nightly")],
    )
    assert await store.jobs_named("nightly", limit=3) == [
        ("adhoc", "r4"),
        ("etl", "r3"),
        ("etl", "r2"),
    ]
    assert await store.jobs_named("nightly", limit=10) == [
        ("adhoc", "r4"),
        ("etl", "r3"),
        ("etl", "r2"),
        ("etl", "r1"),
    ]
    assert await store.jobs_named("nobody", limit=3) == []


async def test_a_job_known_to_two_targets_has_a_trail_on_each(store: Store) -> None:
    await commit(store, [event("a")], upserts=(job("a"),))
    await commit(store, [event("a", target="*")], upserts=(job("a"),), target="*")
    assert [t.target for t in await store.job_trails("a")] == ["*", "etl"]


async def test_recent_events_come_newest_first_across_targets_with_outcomes(
    store: Store,
) -> None:
    a, b, c = event("a"), event("b"), event("c", target="*")
    await commit(store, [a, b], sinks=("hook",), now=T0)
    await commit(store, [c], sinks=("hook", "chat"), now=LATER, target="*")
    await store.mark_delivered(a.event_id, "hook", LATER)
    await store.mark_retry(
        c.event_id, "chat", next_attempt_at=LATER, reason="HTTP 503: busy", now=LATER
    )

    newest = await store.recent_events(2)
    assert [r.event.event_id for r in newest] == [c.event_id, b.event_id]
    assert [(o.sink, o.status, o.attempts) for o in newest[0].outbox] == [
        ("chat", "pending", 1),
        ("hook", "pending", 0),
    ]
    assert [(x.sink, x.outcome, x.answer) for x in newest[0].attempts] == [
        ("chat", "retry", "HTTP 503: busy")
    ]
    (*_, oldest) = await store.recent_events(10)
    assert (oldest.event, oldest.created_at) == (a, T0)
    assert [(o.sink, o.status) for o in oldest.outbox] == [("hook", "delivered")]
    assert await store.recent_events(0) == []
