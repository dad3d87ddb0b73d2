"""Metrics: counters and gauges on an own registry, and the scrape-time job-state collector."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.config import ConfigError, MetricsSettings, parse_settings
from monitor.metrics import MAX_ERROR_CODES, Metrics
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


def job(job_id: str, state: JobState, queue: str = "etl") -> Job:
    return Job(id=job_id, state=state, queue=queue)


def jobs_gauge(metrics: Metrics, queue: str, state: str) -> float | None:
    labels = {**AT, "queue": queue, "state": state}
    return metrics.registry.get_sample_value("dli_batch_jobs", labels)


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
    labels = {**AT, "operation": "list_batches", "code": "200"}
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
    ok = {**AT, "operation": "list_batches", "code": "200"}
    assert value("dli_monitor_api_requests_total", ok) == 2
    failed = {**AT, "operation": "get_state", "code": "503"}
    assert value("dli_monitor_api_requests_total", failed) == 1


def test_a_successful_poll_records_its_duration_and_the_success_time(metrics: Metrics) -> None:
    metrics.observe_poll("etl", 0.3, ok=True, now=T0)
    value = metrics.registry.get_sample_value
    assert value("dli_monitor_last_successful_poll_timestamp_seconds", {**AT, "queue": "etl"}) == (
        T0.timestamp()
    )
    etl = {**AT, "queue": "etl"}
    assert value("dli_monitor_poll_duration_seconds_count", etl) == 1
    assert value("dli_monitor_poll_duration_seconds_sum", etl) == pytest.approx(0.3)
    assert value("dli_monitor_poll_duration_seconds_bucket", {**etl, "le": "0.25"}) == 0
    assert value("dli_monitor_poll_duration_seconds_bucket", {**etl, "le": "0.5"}) == 1
    assert value("dli_monitor_poll_duration_seconds_bucket", {**etl, "le": "120.0"}) == 1
    assert series_of(metrics, "dli_monitor_poll_errors_total") == set()


def test_a_failed_poll_counts_its_reason_and_keeps_the_last_success_time(
    metrics: Metrics,
) -> None:
    metrics.observe_poll("etl", 0.1, ok=True, now=T0)
    metrics.observe_poll("etl", 5.0, ok=False, reason="timeout")
    value = metrics.registry.get_sample_value
    errors = {**AT, "queue": "etl", "reason": "timeout"}
    assert value("dli_monitor_poll_errors_total", errors) == 1
    assert value("dli_monitor_last_successful_poll_timestamp_seconds", {**AT, "queue": "etl"}) == (
        T0.timestamp()
    )
    assert value("dli_monitor_poll_duration_seconds_count", {**AT, "queue": "etl"}) == 2


def test_an_unlisted_or_empty_poll_error_reason_is_counted_as_other(metrics: Metrics) -> None:
    metrics.observe_poll("etl", 1.0, ok=False, reason="Connection refused to https://x/?sk=s")
    metrics.observe_poll("etl", 1.0, ok=False)
    series = series_of(metrics, "dli_monitor_poll_errors_total")
    assert {dict(labels)["reason"] for labels in series} == {"other"}
    value = metrics.registry.get_sample_value
    assert value("dli_monitor_poll_errors_total", {**AT, "queue": "etl", "reason": "other"}) == 2


def test_transitions_are_counted_by_queue_and_states(metrics: Metrics) -> None:
    metrics.record_transition("etl", "running", "dead")
    metrics.record_transition("etl", "running", "dead")
    metrics.record_transition("adhoc", "none", "dead")
    value = metrics.registry.get_sample_value
    name = "dli_batch_job_transitions_total"
    assert value(name, {**AT, "queue": "etl", "from_state": "running", "to_state": "dead"}) == 2
    assert value(name, {**AT, "queue": "adhoc", "from_state": "none", "to_state": "dead"}) == 1


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
    assert metrics.registry.get_sample_value(name, {**AT, "queue": "etl"}) == 4


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
        assert value("dli_monitor_poll_errors_total", {**AT, "queue": queue, "reason": "auth"}) == 0
        assert value("dli_monitor_poll_duration_seconds_count", {**AT, "queue": queue}) == 0
        assert value("dli_monitor_malformed_records_total", {**AT, "queue": queue}) == 0
        stamp = "dli_monitor_last_successful_poll_timestamp_seconds"
        assert value(stamp, {**AT, "queue": queue}) == 0
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


def test_the_exposition_carries_no_job_ids_when_per_job_series_are_off() -> None:
    metrics = Metrics(version="1", settings=MetricsSettings(max_job_series=0), clock=lambda: T0)
    job_id = "0a32f1c2-5d6e-4f70-8a9b-0c1d2e3f4a5b"
    metrics.set_snapshot("etl", [job(job_id, JobState.RUNNING)])
    text = generate_latest(metrics.registry).decode()
    assert "dli_batch_jobs{" in text
    assert job_id not in text
    omitted = {"reason": "limit"}
    assert metrics.registry.get_sample_value("dli_monitor_job_series_omitted", omitted) == 1


def test_api_errors_keep_dli_and_gateway_codes_and_fold_the_rest_into_other(
    metrics: Metrics,
) -> None:
    for code in ("DLI.0002", "APIG.0308", "DLI.0002", "timeout", "", "dli.0002", "E" * 40):
        metrics.observe_api_error("list_batches", code)
    metrics.observe_api_error("list_batches", "Bad token sk=abc https://h/x?token=t")
    series = series_of(metrics, "dli_monitor_api_errors_total")
    codes = {dict(labels)["error_code"] for labels in series}
    assert codes == {"DLI.0002", "APIG.0308", "timeout", "other"}
    value = metrics.registry.get_sample_value
    name = "dli_monitor_api_errors_total"
    assert value(name, {**AT, "operation": "list_batches", "error_code": "DLI.0002"}) == 2
    assert value(name, {**AT, "operation": "list_batches", "error_code": "other"}) == 4


def test_api_error_codes_beyond_the_distinct_limit_are_counted_as_other(metrics: Metrics) -> None:
    for number in range(MAX_ERROR_CODES + 5):
        metrics.observe_api_error("list_batches", f"DLI.{number:04d}")
    metrics.observe_api_error("list_batches", "DLI.0000")
    codes = {dict(s)["error_code"] for s in series_of(metrics, "dli_monitor_api_errors_total")}
    assert len(codes) == MAX_ERROR_CODES + 1
    name = "dli_monitor_api_errors_total"
    value = metrics.registry.get_sample_value
    assert value(name, {**AT, "operation": "list_batches", "error_code": "other"}) == 5
    assert value(name, {**AT, "operation": "list_batches", "error_code": "DLI.0000"}) == 2


def test_pages_fetched_add_up_per_queue_from_zero(metrics: Metrics) -> None:
    metrics.declare(queues=["etl"], sinks=[])
    name = "dli_monitor_pages_fetched_total"
    assert metrics.registry.get_sample_value(name, {**AT, "queue": "etl"}) == 0
    metrics.observe_pages("etl", 3)
    metrics.observe_pages("etl", 0)
    metrics.observe_pages("etl", 2)
    assert metrics.registry.get_sample_value(name, {**AT, "queue": "etl"}) == 5


def test_snapshot_age_is_computed_at_scrape_time_from_the_last_successful_poll() -> None:
    clock = Clock()
    metrics = Metrics(version="1", clock=clock)
    name = "dli_monitor_snapshot_age_seconds"
    metrics.declare(queues=["etl"], sinks=[])
    assert metrics.registry.get_sample_value(name, {**AT, "queue": "etl"}) is None
    metrics.observe_poll("etl", 0.1, ok=True, now=T0)
    clock.advance(45)
    assert metrics.registry.get_sample_value(name, {**AT, "queue": "etl"}) == 45
    metrics.observe_poll("etl", 0.1, ok=False, reason="timeout", now=clock.now)
    clock.advance(15)
    assert metrics.registry.get_sample_value(name, {**AT, "queue": "etl"}) == 60
    metrics.observe_poll("etl", 0.1, ok=True)
    assert metrics.registry.get_sample_value(name, {**AT, "queue": "etl"}) == 0


def test_outbox_depth_and_oldest_age_per_sink_with_emptied_sinks_back_to_zero() -> None:
    clock = Clock()
    metrics = Metrics(version="1", clock=clock)
    metrics.declare(queues=[], sinks=["hook", "chat"])
    age = "dli_monitor_outbox_oldest_age_seconds"
    value = metrics.registry.get_sample_value
    assert value(age, {"sink": "chat"}) == 0
    metrics.set_outbox({"hook": (4, T0 - timedelta(seconds=90)), "chat": (1, T0)})
    clock.advance(10)
    assert value("dli_monitor_outbox_pending", {"sink": "hook"}) == 4
    assert value(age, {"sink": "hook"}) == 100
    assert value(age, {"sink": "chat"}) == 10
    metrics.set_outbox({"hook": (0, None)})
    assert value("dli_monitor_outbox_pending", {"sink": "chat"}) == 0
    assert value(age, {"sink": "hook"}) == 0
    assert value(age, {"sink": "chat"}) == 0


def test_throttled_is_a_pre_initialised_notification_outcome(metrics: Metrics) -> None:
    metrics.declare(queues=[], sinks=["hook"])
    name = "dli_monitor_notifications_total"
    labels = {"sink": "hook", "outcome": "throttled"}
    assert metrics.registry.get_sample_value(name, labels) == 0
    metrics.observe_notification("hook", "throttled")
    assert metrics.registry.get_sample_value(name, labels) == 1


def test_config_load_success_starts_at_one_and_follows_each_load(metrics: Metrics) -> None:
    name = "dli_monitor_config_load_success"
    assert metrics.registry.get_sample_value(name) == 1
    metrics.set_config_loaded(False)
    assert metrics.registry.get_sample_value(name) == 0
    metrics.set_config_loaded(True)
    assert metrics.registry.get_sample_value(name) == 1


def test_finished_jobs_feed_the_run_duration_histogram_by_listed_name_or_other() -> None:
    settings = MetricsSettings(histogram_job_names=["nightly_.*"])
    metrics = Metrics(version="1", settings=settings, clock=lambda: T0)
    created = T0 - timedelta(seconds=400)
    metrics.observe_finished(
        Job(id="a", state=JobState.DEAD, queue="etl", name="nightly_x", duration_ms=90_000)
    )
    metrics.observe_finished(
        Job(
            id="b",
            state=JobState.SUCCESS,
            queue="etl",
            name="adhoc",
            create_time=created,
            state_since=T0 - timedelta(seconds=100),
        )
    )
    metrics.observe_finished(Job(id="c", state=JobState.RUNNING, queue="etl", duration_ms=5))
    metrics.observe_finished(
        Job(id="d", state=JobState.DEAD, queue="", name="nightly_y", duration_ms=1000),
        target="adhoc",
    )
    value = metrics.registry.get_sample_value
    name = "dli_batch_job_run_duration_seconds"
    named = {**AT, "queue": "etl", "job_name": "nightly_x"}
    other = {**AT, "queue": "etl", "job_name": "other"}
    assert value(f"{name}_count", named) == 1
    assert value(f"{name}_sum", named) == 90
    assert value(f"{name}_bucket", {**named, "le": "60.0"}) == 0
    assert value(f"{name}_bucket", {**named, "le": "300.0"}) == 1
    assert value(f"{name}_count", other) == 1
    assert value(f"{name}_sum", other) == 300
    assert value(f"{name}_count", {**AT, "queue": "adhoc", "job_name": "nightly_y"}) == 1


def test_a_finished_job_with_no_known_run_time_is_not_observed(metrics: Metrics) -> None:
    metrics.observe_finished(Job(id="a", state=JobState.DEAD, queue="etl"))
    assert series_of(metrics, "dli_batch_job_run_duration_seconds_count") == set()


def test_a_bad_regex_in_the_metrics_settings_is_reported_with_its_key_path() -> None:
    data = {
        "dli": {"endpoint": "http://127.0.0.1:1", "project_id": "abc", "auth": {"type": "none"}},
        "queues": ["etl"],
        "metrics": {"job_name_deny": ["ok_.*", "bad(["], "job_series_ttl": "30m"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, {})
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("metrics.job_name_deny[1]: not a valid regular")
    del data["metrics"]["job_name_deny"]  # type: ignore[attr-defined]
    settings = parse_settings(data, {})
    assert settings.metrics.job_series_ttl == 1800
    assert settings.metrics.max_job_series == 2000


def _populated() -> Metrics:
    clock = Clock()
    metrics = Metrics(
        version="1.2.3",
        settings=MetricsSettings(max_job_series=2, histogram_job_names=["nightly_.*"]),
        clock=clock,
    )
    metrics.declare(queues=["etl", "adhoc"], sinks=["hook"])
    metrics.observe_api_request("list_batches", "200")
    metrics.observe_api_error("list_batches", "DLI.0002")
    metrics.observe_pages("etl", 2)
    metrics.observe_poll("etl", 0.4, ok=True, now=T0)
    metrics.observe_poll("adhoc", 9.0, ok=False, reason="server_error")
    metrics.record_transition("etl", "running", "dead")
    metrics.observe_notification("hook", "delivered")
    metrics.observe_notification("hook", "throttled")
    metrics.set_outbox({"hook": (2, T0)})
    metrics.set_config_loaded(True)
    metrics.observe_malformed("etl", 2)
    dead = Job(
        id="c",
        state=JobState.DEAD,
        queue="etl",
        name="nightly_a",
        owner="bob",
        create_time=T0 - timedelta(seconds=60),
        state_since=T0,
    )
    metrics.observe_finished(dead)
    metrics.set_snapshot(
        "etl",
        [
            dataclasses.replace(job("a", JobState.RUNNING), create_time=T0),
            job("b", JobState.UNKNOWN),
            dead,
        ],
    )
    clock.advance(5)
    return metrics


def test_promtool_accepts_the_exposition() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("REQUIRE_TOOLS") == "1":
            pytest.fail("promtool is required (REQUIRE_TOOLS=1) but not installed")
        pytest.skip("promtool not installed")
    text = generate_latest(_populated().registry)
    for name in (
        b"dli_monitor_poll_errors_total{",
        b"dli_batch_job_state{",
        b"dli_batch_job_info{",
        b"dli_batch_job_duration_seconds{",
        b"dli_batch_job_run_duration_seconds_bucket{",
        b"dli_monitor_snapshot_age_seconds{",
        b"dli_monitor_outbox_oldest_age_seconds{",
        b'dli_monitor_job_series_omitted{reason="limit"} 1.0',
    ):
        assert name in text
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=10, check=False
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
