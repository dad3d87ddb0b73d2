"""The differ, as tables and properties: pure, deterministic, one event per change."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from monitor.diff import GONE, Baseline, diff, find_missing
from monitor.models import EventKind, Job, JobState

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=30)
T2 = T1 + timedelta(seconds=30)


def job(job_id: str, state: JobState, **kw: object) -> Job:
    fields: dict[str, object] = {"queue": "etl", "name": f"job-{job_id}", "create_time": T0}
    fields.update(kw)
    return Job(id=job_id, state=state, **fields)  # type: ignore[arg-type]


def snap(*jobs: Job) -> dict[str, Job]:
    return {j.id: j for j in jobs}


def baseline(*jobs: Job) -> dict[str, Job]:
    return diff(None, snap(*jobs), target="etl", now=T0).snapshot


def test_the_first_poll_is_a_silent_baseline() -> None:
    result = diff(
        None, snap(job("a", JobState.RUNNING), job("b", JobState.DEAD)), target="etl", now=T0
    )
    assert result.events == ()
    assert set(result.snapshot) == {"a", "b"}
    assert {j.id for j in result.upserts} == {"a", "b"}


def test_baseline_notify_reports_only_active_jobs() -> None:
    current = snap(job("a", JobState.RUNNING), job("b", JobState.DEAD))
    result = diff(None, current, target="etl", now=T0, baseline=Baseline.NOTIFY)
    assert [(e.kind, e.job.id) for e in result.events] == [(EventKind.APPEARED, "a")]


def test_running_to_dead_is_one_transition() -> None:
    previous = baseline(job("a", JobState.RUNNING))
    result = diff(previous, snap(job("a", JobState.DEAD)), target="etl", now=T1)
    assert len(result.events) == 1
    event = result.events[0]
    assert (event.kind, event.from_state, event.to_state) == (
        EventKind.TRANSITION,
        JobState.RUNNING,
        JobState.DEAD,
    )
    assert event.is_failure
    assert result.snapshot["a"].state_since == T1


def test_an_unchanged_listing_produces_nothing_and_writes_nothing() -> None:
    previous = baseline(job("a", JobState.RUNNING), job("b", JobState.SUCCESS))
    current = snap(job("a", JobState.RUNNING), job("b", JobState.SUCCESS))
    result = diff(previous, current, target="etl", now=T1)
    assert result.events == ()
    assert result.upserts == ()
    assert result.removals == ()


def test_a_job_first_seen_already_dead_is_a_failure_event() -> None:
    previous = baseline(job("a", JobState.RUNNING))
    current = snap(job("a", JobState.RUNNING), job("z", JobState.DEAD))
    (event,) = diff(previous, current, target="etl", now=T1).events
    assert (event.kind, event.from_state, event.to_state) == (
        EventKind.APPEARED,
        None,
        JobState.DEAD,
    )
    assert event.is_failure


def test_a_missing_active_job_without_an_answer_is_kept_silently() -> None:
    previous = baseline(job("a", JobState.RUNNING))
    result = diff(previous, {}, target="etl", now=T1)
    assert result.events == ()
    assert result.snapshot == previous
    assert result.removals == ()


def test_a_missing_active_job_confirmed_gone_is_vanished() -> None:
    previous = baseline(job("a", JobState.RUNNING))
    result = diff(previous, {}, target="etl", now=T1, confirmed={"a": GONE})
    (event,) = result.events
    assert (event.kind, event.from_state, event.to_state) == (
        EventKind.VANISHED,
        JobState.RUNNING,
        None,
    )
    assert result.removals == ("a",)
    assert "a" not in result.snapshot


def test_a_missing_active_job_whose_state_call_answers_is_a_transition() -> None:
    previous = baseline(job("a", JobState.RUNNING))
    result = diff(previous, {}, target="etl", now=T1, confirmed={"a": JobState.DEAD})
    (event,) = result.events
    assert (event.kind, event.to_state) == (EventKind.TRANSITION, JobState.DEAD)
    assert result.snapshot["a"].state is JobState.DEAD


def test_a_missing_terminal_job_is_dropped_without_an_event() -> None:
    previous = baseline(job("a", JobState.SUCCESS))
    result = diff(previous, {}, target="etl", now=T1)
    assert result.events == ()
    assert result.removals == ("a",)


def test_an_unknown_state_never_replaces_a_known_one() -> None:
    previous = baseline(job("a", JobState.RUNNING))
    weird = job("a", JobState.UNKNOWN, raw_state="Exploding")
    result = diff(previous, snap(weird), target="etl", now=T1)
    assert result.events == ()
    assert result.snapshot["a"].state is JobState.RUNNING
    later = diff(result.snapshot, snap(job("a", JobState.DEAD)), target="etl", now=T2)
    assert [(e.from_state, e.to_state) for e in later.events] == [(JobState.RUNNING, JobState.DEAD)]


def test_the_same_change_derived_twice_has_the_same_event_id() -> None:
    previous = baseline(job("a", JobState.RUNNING))
    first = diff(previous, snap(job("a", JobState.DEAD)), target="etl", now=T1)
    retried = diff(previous, snap(job("a", JobState.DEAD)), target="etl", now=T2)
    assert first.events[0].event_id == retried.events[0].event_id


def test_a_job_that_goes_back_and_forth_gets_a_new_event_id_each_time() -> None:
    s0 = baseline(job("a", JobState.RUNNING))
    s1 = diff(s0, snap(job("a", JobState.RECOVERING)), target="etl", now=T1)
    s2 = diff(s1.snapshot, snap(job("a", JobState.RUNNING)), target="etl", now=T2)
    s3 = diff(
        s2.snapshot,
        snap(job("a", JobState.RECOVERING)),
        target="etl",
        now=T2 + timedelta(seconds=30),
    )
    ids = [s1.events[0].event_id, s2.events[0].event_id, s3.events[0].event_id]
    assert len(set(ids)) == 3


def test_find_missing_lists_only_active_jobs_absent_from_the_listing() -> None:
    previous = baseline(
        job("a", JobState.RUNNING), job("b", JobState.DEAD), job("c", JobState.STARTING)
    )
    missing = find_missing(previous, snap(job("c", JobState.RUNNING)))
    assert [j.id for j in missing] == ["a"]
    assert find_missing(None, {}) == ()


STATES = st.sampled_from(list(JobState))
SNAPSHOTS = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d", "e"]),
    STATES,
    max_size=5,
).map(lambda d: {k: job(k, v) for k, v in d.items()})


@given(SNAPSHOTS)
def test_diffing_a_snapshot_against_itself_yields_nothing(current: dict[str, Job]) -> None:
    previous = baseline(*current.values())
    assert diff(previous, current, target="etl", now=T1).events == ()


@given(SNAPSHOTS, SNAPSHOTS)
def test_every_transition_starts_from_the_previous_state(
    before: dict[str, Job], after: dict[str, Job]
) -> None:
    previous = baseline(*before.values())
    result = diff(previous, after, target="etl", now=T1)
    ids = [e.event_id for e in result.events]
    assert len(ids) == len(set(ids))
    for event in result.events:
        if event.kind is EventKind.TRANSITION:
            assert previous[event.job.id].state is event.from_state
            assert event.to_state is not JobState.UNKNOWN
        if event.kind is EventKind.APPEARED:
            assert event.job.id not in previous
    assert all(e.kind is not EventKind.VANISHED for e in result.events)


@given(SNAPSHOTS, SNAPSHOTS)
def test_applying_the_result_twice_reports_nothing_new(
    before: dict[str, Job], after: dict[str, Job]
) -> None:
    first = diff(baseline(*before.values()), after, target="etl", now=T1)
    again = diff(first.snapshot, after, target="etl", now=T2)
    assert again.events == ()


def test_state_since_carries_over_while_the_state_holds() -> None:
    previous = baseline(job("a", JobState.STARTING))
    later = dataclasses.replace(job("a", JobState.STARTING), log_tail=("new line",))
    result = diff(previous, snap(later), target="etl", now=T2)
    assert result.snapshot["a"].state_since == previous["a"].state_since
    assert result.upserts[0].log_tail == ("new line",)
