"""Metrics: counters and gauges on an own registry, and the scrape-time job-state collector."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.metrics import Metrics
from monitor.models import DLI_STATES, Job, JobState

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)


def job(job_id: str, state: JobState, queue: str = "etl") -> Job:
    return Job(id=job_id, state=state, queue=queue)


def jobs_gauge(metrics: Metrics, queue: str, state: str) -> float | None:
    return metrics.registry.get_sample_value("dli_batch_jobs", {"queue": queue, "state": state})


def series_of(metrics: Metrics, name: str) -> set[tuple[tuple[str, str], ...]]:
    return {
        tuple(sorted(sample.labels.items()))
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    }


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(version="1.2.3")


def test_build_info_carries_the_version_with_value_one(metrics: Metrics) -> None:
    assert metrics.registry.get_sample_value("dli_monitor_build_info", {"version": "1.2.3"}) == 1


def test_each_instance_has_its_own_registry_so_counts_never_mix() -> None:
    first, second = Metrics(version="a"), Metrics(version="b")
    first.observe_api_request("list_batches", "200")
    labels = {"operation": "list_batches", "code": "200"}
    assert first.registry.get_sample_value("dli_monitor_api_requests_total", labels) == 1
    assert second.registry.get_sample_value("dli_monitor_api_requests_total", labels) is None


def test_a_passed_registry_is_the_one_that_gets_the_metrics() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(version="x", registry=registry)
    assert metrics.registry is registry
    assert registry.get_sample_value("dli_monitor_build_info", {"version": "x"}) == 1


def test_api_requests_are_counted_by_operation_and_code(metrics: Metrics) -> None:
    metrics.observe_api_request("list_batches", "200")
    metrics.observe_api_request("list_batches", "200")
    metrics.observe_api_request("get_state", "503")
    value = metrics.registry.get_sample_value
    ok = {"operation": "list_batches", "code": "200"}
    assert value("dli_monitor_api_requests_total", ok) == 2
    assert value("dli_monitor_api_requests_total", {"operation": "get_state", "code": "503"}) == 1


def test_a_successful_poll_records_its_duration_and_the_success_time(metrics: Metrics) -> None:
    metrics.observe_poll("etl", 0.3, ok=True, now=T0)
    value = metrics.registry.get_sample_value
    assert value("dli_monitor_last_successful_poll_timestamp_seconds", {"queue": "etl"}) == (
        T0.timestamp()
    )
    assert value("dli_monitor_poll_duration_seconds_count", {"queue": "etl"}) == 1
    assert value("dli_monitor_poll_duration_seconds_sum", {"queue": "etl"}) == pytest.approx(0.3)
    assert value("dli_monitor_poll_duration_seconds_bucket", {"queue": "etl", "le": "0.25"}) == 0
    assert value("dli_monitor_poll_duration_seconds_bucket", {"queue": "etl", "le": "0.5"}) == 1
    assert value("dli_monitor_poll_duration_seconds_bucket", {"queue": "etl", "le": "120.0"}) == 1
    assert series_of(metrics, "dli_monitor_poll_errors_total") == set()


def test_a_failed_poll_counts_its_reason_and_keeps_the_last_success_time(
    metrics: Metrics,
) -> None:
    metrics.observe_poll("etl", 0.1, ok=True, now=T0)
    metrics.observe_poll("etl", 5.0, ok=False, reason="timeout")
    value = metrics.registry.get_sample_value
    errors = {"queue": "etl", "reason": "timeout"}
    assert value("dli_monitor_poll_errors_total", errors) == 1
    assert value("dli_monitor_last_successful_poll_timestamp_seconds", {"queue": "etl"}) == (
        T0.timestamp()
    )
    assert value("dli_monitor_poll_duration_seconds_count", {"queue": "etl"}) == 2


def test_an_unlisted_or_empty_poll_error_reason_is_counted_as_other(metrics: Metrics) -> None:
    metrics.observe_poll("etl", 1.0, ok=False, reason="Connection refused to https://x/?sk=s")
    metrics.observe_poll("etl", 1.0, ok=False)
    series = series_of(metrics, "dli_monitor_poll_errors_total")
    assert {dict(labels)["reason"] for labels in series} == {"other"}
    value = metrics.registry.get_sample_value
    assert value("dli_monitor_poll_errors_total", {"queue": "etl", "reason": "other"}) == 2


def test_transitions_are_counted_by_queue_and_states(metrics: Metrics) -> None:
    metrics.record_transition("etl", "running", "dead")
    metrics.record_transition("etl", "running", "dead")
    metrics.record_transition("adhoc", "none", "dead")
    value = metrics.registry.get_sample_value
    name = "dli_batch_job_transitions_total"
    assert value(name, {"queue": "etl", "from_state": "running", "to_state": "dead"}) == 2
    assert value(name, {"queue": "adhoc", "from_state": "none", "to_state": "dead"}) == 1


def test_notifications_are_counted_by_sink_and_outcome(metrics: Metrics) -> None:
    metrics.observe_notification("hook", "delivered")
    metrics.observe_notification("hook", "retry")
    metrics.observe_notification("hook", "retry")
    value = metrics.registry.get_sample_value
    name = "dli_monitor_notifications_total"
    assert value(name, {"sink": "hook", "outcome": "delivered"}) == 1
    assert value(name, {"sink": "hook", "outcome": "retry"}) == 2


def test_malformed_records_add_up_per_queue(metrics: Metrics) -> None:
    metrics.observe_malformed("etl")
    metrics.observe_malformed("etl", 3)
    name = "dli_monitor_malformed_records_total"
    assert metrics.registry.get_sample_value(name, {"queue": "etl"}) == 4


def test_sinks_missing_from_the_pending_mapping_drop_to_zero(metrics: Metrics) -> None:
    metrics.set_outbox_pending({"hook": 3, "chat": 2})
    metrics.set_outbox_pending({"chat": 1})
    value = metrics.registry.get_sample_value
    assert value("dli_monitor_outbox_pending", {"sink": "hook"}) == 0
    assert value("dli_monitor_outbox_pending", {"sink": "chat"}) == 1


def test_declare_creates_zero_series_for_every_queue_and_sink(metrics: Metrics) -> None:
    metrics.declare(queues=["etl", "adhoc"], sinks=["hook"])
    value = metrics.registry.get_sample_value
    for queue in ("etl", "adhoc"):
        assert value("dli_monitor_poll_errors_total", {"queue": queue, "reason": "auth"}) == 0
        assert value("dli_monitor_poll_duration_seconds_count", {"queue": queue}) == 0
        assert value("dli_monitor_malformed_records_total", {"queue": queue}) == 0
        stamp = "dli_monitor_last_successful_poll_timestamp_seconds"
        assert value(stamp, {"queue": queue}) == 0
        for state in DLI_STATES:
            assert jobs_gauge(metrics, queue, state.value) == 0
    for outcome in ("delivered", "retry", "failed"):
        labels = {"sink": "hook", "outcome": outcome}
        assert value("dli_monitor_notifications_total", labels) == 0
    assert value("dli_monitor_outbox_pending", {"sink": "hook"}) == 0


def test_declaring_a_sink_again_keeps_its_pending_count(metrics: Metrics) -> None:
    metrics.set_outbox_pending({"hook": 5})
    metrics.declare(queues=[], sinks=["hook", "chat"])
    value = metrics.registry.get_sample_value
    assert value("dli_monitor_outbox_pending", {"sink": "hook"}) == 5
    assert value("dli_monitor_outbox_pending", {"sink": "chat"}) == 0


def test_jobs_are_counted_by_the_jobs_queue_and_state(metrics: Metrics) -> None:
    metrics.set_snapshot(
        "all",
        [
            job("a", JobState.RUNNING, "etl"),
            job("b", JobState.RUNNING, "etl"),
            job("c", JobState.DEAD, "etl"),
            job("d", JobState.STARTING, "adhoc"),
        ],
    )
    assert jobs_gauge(metrics, "etl", "running") == 2
    assert jobs_gauge(metrics, "etl", "dead") == 1
    assert jobs_gauge(metrics, "adhoc", "starting") == 1
    assert jobs_gauge(metrics, "all", "running") is None


def test_every_dli_state_is_present_with_zero_for_each_known_queue(metrics: Metrics) -> None:
    metrics.declare(queues=["idle"], sinks=[])
    metrics.set_snapshot("etl", [job("a", JobState.RUNNING, "etl")])
    for queue in ("idle", "etl"):
        for state in DLI_STATES:
            expected = 1 if (queue, state) == ("etl", JobState.RUNNING) else 0
            assert jobs_gauge(metrics, queue, state.value) == expected
    assert jobs_gauge(metrics, "etl", "killed") is None


def test_states_outside_the_dli_set_appear_when_they_occur(metrics: Metrics) -> None:
    metrics.set_snapshot(
        "etl",
        [job("a", JobState.UNKNOWN), job("b", JobState.KILLED), job("c", JobState.UNKNOWN)],
    )
    assert jobs_gauge(metrics, "etl", "unknown") == 2
    assert jobs_gauge(metrics, "etl", "killed") == 1


def test_replacing_a_targets_snapshot_drops_its_old_counts(metrics: Metrics) -> None:
    metrics.set_snapshot(
        "t",
        [job("a", JobState.RUNNING, "gone"), job("b", JobState.KILLED), job("c", JobState.RUNNING)],
    )
    metrics.set_snapshot("t", [job("a", JobState.DEAD), job("b", JobState.SUCCESS)])
    assert jobs_gauge(metrics, "etl", "running") == 0
    assert jobs_gauge(metrics, "etl", "dead") == 1
    assert jobs_gauge(metrics, "etl", "success") == 1
    assert jobs_gauge(metrics, "etl", "killed") is None
    assert {dict(s)["queue"] for s in series_of(metrics, "dli_batch_jobs")} == {"etl"}


def test_other_targets_keep_their_counts_when_one_target_is_replaced(metrics: Metrics) -> None:
    metrics.set_snapshot("etl", [job("a", JobState.RUNNING, "etl")])
    metrics.set_snapshot("adhoc", [job("b", JobState.RUNNING, "adhoc")])
    metrics.set_snapshot("adhoc", [])
    assert jobs_gauge(metrics, "etl", "running") == 1
    assert {dict(s)["queue"] for s in series_of(metrics, "dli_batch_jobs")} == {"etl"}


def test_a_job_listed_by_two_targets_is_counted_once_in_its_newest_state(
    metrics: Metrics,
) -> None:
    metrics.set_snapshot("all", [job("a", JobState.RUNNING, "etl")])
    metrics.set_snapshot("etl", [job("a", JobState.DEAD, "etl")])
    assert jobs_gauge(metrics, "etl", "running") == 0
    assert jobs_gauge(metrics, "etl", "dead") == 1


def test_a_job_without_a_queue_is_counted_under_its_target(metrics: Metrics) -> None:
    metrics.set_snapshot("etl", [job("a", JobState.RUNNING, "")])
    assert jobs_gauge(metrics, "etl", "running") == 1
    assert jobs_gauge(metrics, "", "running") is None


def test_the_exposition_never_carries_job_ids(metrics: Metrics) -> None:
    job_id = "0a32f1c2-5d6e-4f70-8a9b-0c1d2e3f4a5b"
    metrics.set_snapshot("etl", [job(job_id, JobState.RUNNING)])
    text = generate_latest(metrics.registry).decode()
    assert "dli_batch_jobs{" in text
    assert job_id not in text


def _populated() -> Metrics:
    metrics = Metrics(version="1.2.3")
    metrics.declare(queues=["etl", "adhoc"], sinks=["hook"])
    metrics.observe_api_request("list_batches", "200")
    metrics.observe_poll("etl", 0.4, ok=True, now=T0)
    metrics.observe_poll("adhoc", 9.0, ok=False, reason="server_error")
    metrics.record_transition("etl", "running", "dead")
    metrics.observe_notification("hook", "delivered")
    metrics.set_outbox_pending({"hook": 2})
    metrics.observe_malformed("etl", 2)
    metrics.set_snapshot("etl", [job("a", JobState.RUNNING), job("b", JobState.UNKNOWN)])
    return metrics


def test_promtool_accepts_the_exposition() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("REQUIRE_TOOLS") == "1":
            pytest.fail("promtool is required (REQUIRE_TOOLS=1) but not installed")
        pytest.skip("promtool not installed")
    text = generate_latest(_populated().registry)
    assert b"dli_monitor_poll_errors_total{" in text
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=10, check=False
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
