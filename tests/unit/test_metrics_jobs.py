"""Per-job series built at scrape time: state sets, info, TTL after a job ends, cap, filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.config import MetricsSettings
from monitor.metrics import Metrics
from monitor.models import DLI_STATES, Job, JobState

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)

AT = {"project": "default", "region": "local"}
"""The project labels of the single `dli:` form whose endpoint names no region."""


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def job(
    job_id: str,
    state: JobState = JobState.RUNNING,
    *,
    name: str = "nightly_etl",
    queue: str = "etl",
    created_ago: float = 600.0,
    ended_ago: float | None = None,
    **fields: Any,
) -> Job:
    since = T0 - timedelta(seconds=ended_ago) if ended_ago is not None else T0
    return Job(
        id=job_id,
        state=state,
        queue=queue,
        name=name,
        create_time=T0 - timedelta(seconds=created_ago),
        state_since=since,
        **fields,
    )


def make(clock: Clock, **settings: Any) -> Metrics:
    return Metrics(version="1", settings=MetricsSettings.model_validate(settings), clock=clock)


def ids(metrics: Metrics) -> set[str]:
    """The job ids that have a `dli_batch_job_info` series right now."""
    return {
        sample.labels["job_id"]
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "dli_batch_job_info"
    }


def state_value(
    metrics: Metrics, job_id: str, state: str, name: str = "nightly_etl"
) -> float | None:
    labels = {**AT, "queue": "etl", "job_id": job_id, "job_name": name, "state": state}
    return metrics.registry.get_sample_value("dli_batch_job_state", labels)


def omitted(metrics: Metrics, reason: str) -> float | None:
    return metrics.registry.get_sample_value("dli_monitor_job_series_omitted", {"reason": reason})


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_the_state_set_is_one_for_the_current_state_and_zero_for_the_other_dli_states(
    clock: Clock,
) -> None:
    metrics = make(clock)
    metrics.set_snapshot("etl", [job("j1", JobState.RUNNING)])
    for state in DLI_STATES:
        assert state_value(metrics, "j1", state.value) == (1 if state is JobState.RUNNING else 0)
    assert state_value(metrics, "j1", "killed") is None


def test_a_job_in_a_non_dli_state_gets_that_state_added_to_its_set(clock: Clock) -> None:
    metrics = make(clock)
    metrics.set_snapshot("etl", [job("j1", JobState.UNKNOWN)])
    assert state_value(metrics, "j1", "unknown") == 1
    assert [state_value(metrics, "j1", s.value) for s in DLI_STATES] == [0, 0, 0, 0, 0]


def test_info_created_and_duration_describe_the_job(clock: Clock) -> None:
    metrics = make(clock)
    running = job("j1", owner="alice", sc_type="A", app_id="application_1_0001", created_ago=90)
    metrics.set_snapshot("etl", [running])
    value = metrics.registry.get_sample_value
    info = {
        **AT,
        "queue": "etl",
        "job_id": "j1",
        "job_name": "nightly_etl",
        "owner": "alice",
        "sc_type": "A",
        "app_id": "application_1_0001",
    }
    assert value("dli_batch_job_info", info) == 1
    key = {**AT, "queue": "etl", "job_id": "j1", "job_name": "nightly_etl"}
    assert value("dli_batch_job_created_timestamp_seconds", key) == T0.timestamp() - 90
    assert value("dli_batch_job_duration_seconds", key) == 90
    clock.advance(30)
    assert value("dli_batch_job_duration_seconds", key) == 120


def test_the_duration_reported_by_dli_wins_and_an_ended_job_stops_its_clock(clock: Clock) -> None:
    metrics = make(clock)
    metrics.set_snapshot(
        "etl",
        [
            job("j1", duration_ms=45_500),
            job("j2", JobState.SUCCESS, name="b", created_ago=700, ended_ago=100),
        ],
    )
    value = metrics.registry.get_sample_value
    first = {**AT, "queue": "etl", "job_id": "j1", "job_name": "nightly_etl"}
    second = {**AT, "queue": "etl", "job_id": "j2", "job_name": "b"}
    clock.advance(50)
    assert value("dli_batch_job_duration_seconds", first) == 45.5
    assert value("dli_batch_job_duration_seconds", second) == 600


def test_an_ended_job_keeps_its_series_until_its_ttl_passes_then_they_vanish(
    clock: Clock,
) -> None:
    metrics = make(clock, job_series_ttl="10m")
    metrics.set_snapshot("etl", [job("j1", JobState.DEAD, ended_ago=0), job("j2")])
    assert ids(metrics) == {"j1", "j2"}
    assert state_value(metrics, "j1", "dead") == 1
    clock.advance(600)
    assert ids(metrics) == {"j1", "j2"}
    clock.advance(1)
    assert ids(metrics) == {"j2"}
    assert state_value(metrics, "j1", "dead") is None
    assert omitted(metrics, "limit") == 0


def test_a_zero_ttl_keeps_only_active_jobs(clock: Clock) -> None:
    metrics = make(clock, job_series_ttl=0)
    metrics.set_snapshot("etl", [job("j1", JobState.SUCCESS, ended_ago=1), job("j2")])
    assert ids(metrics) == {"j2"}


def test_an_ended_job_without_any_end_time_counts_as_expired(clock: Clock) -> None:
    metrics = make(clock)
    metrics.set_snapshot("etl", [Job(id="j1", state=JobState.DEAD, queue="etl")])
    assert ids(metrics) == set()


def test_the_cap_keeps_active_jobs_first_then_the_newest_and_counts_the_rest(
    clock: Clock,
) -> None:
    metrics = make(clock, max_job_series=3)
    metrics.set_snapshot(
        "etl",
        [
            job("ended-new", JobState.SUCCESS, created_ago=10, ended_ago=5),
            job("old", created_ago=5000),
            job("new", created_ago=60),
            job("mid", created_ago=600),
        ],
    )
    assert ids(metrics) == {"new", "mid", "old"}
    assert omitted(metrics, "limit") == 1
    assert omitted(metrics, "name_filter") == 0
    running = {**AT, "queue": "etl", "state": "running"}
    assert metrics.registry.get_sample_value("dli_batch_jobs", running) == 3


def test_allow_and_deny_regexes_match_whole_job_names(clock: Clock) -> None:
    metrics = make(clock, job_name_allow=["nightly_.*", "report"], job_name_deny=[".*_tmp"])
    metrics.set_snapshot(
        "etl",
        [
            job("a", name="nightly_etl"),
            job("b", name="nightly_etl_tmp"),
            job("c", name="report"),
            job("d", name="report_v2"),
            job("e", name="adhoc"),
        ],
    )
    assert ids(metrics) == {"a", "c"}
    assert omitted(metrics, "name_filter") == 3
    assert omitted(metrics, "limit") == 0


def test_expired_jobs_are_not_counted_as_omitted(clock: Clock) -> None:
    metrics = make(clock, job_series_ttl="1m", job_name_deny=["x"])
    metrics.set_snapshot("etl", [job("a", JobState.DEAD, name="x", ended_ago=3600)])
    assert omitted(metrics, "name_filter") == 0


def test_a_job_without_a_queue_takes_its_targets_name(clock: Clock) -> None:
    metrics = make(clock)
    metrics.set_snapshot("adhoc", [job("j1", queue="")])
    labels = {**AT, "queue": "adhoc", "job_id": "j1", "job_name": "nightly_etl", "state": "running"}
    assert metrics.registry.get_sample_value("dli_batch_job_state", labels) == 1


def test_a_job_listed_by_two_targets_has_one_set_of_series_in_its_newest_state(
    clock: Clock,
) -> None:
    metrics = make(clock)
    metrics.set_snapshot("all", [job("j1", JobState.RUNNING)])
    metrics.set_snapshot("etl", [job("j1", JobState.DEAD, ended_ago=0)])
    assert state_value(metrics, "j1", "dead") == 1
    assert state_value(metrics, "j1", "running") == 0


def test_very_long_label_values_are_cut(clock: Clock) -> None:
    metrics = make(clock)
    metrics.set_snapshot("etl", [job("j1", name="n" * 500)])
    names = {
        sample.labels["job_name"]
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "dli_batch_job_info"
    }
    assert names == {"n" * 200}
