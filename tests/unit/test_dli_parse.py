"""Raw DLI batch objects into `Job`s: tolerant of odd data, strict about ids, never leaky."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.dli.parse import MalformedJob, parse_job
from monitor.models import JobState

DOC_EXAMPLE: dict[str, Any] = {
    "id": "0a324461-d9d9-45da-a52a-3b3c7a3d809e",
    "appId": "batch-session-0a324461:8998",
    "name": "nightly-etl",
    "owner": "alice",
    "proxyUser": "",
    "state": "running",
    "kind": "spark",
    "log": ["stdout: ", "stderr: ", "YARN Diagnostics: "],
    "sc_type": "A",
    "cluster_name": "cluster_q",
    "queue": "etl_queue",
    "create_time": 1531906043036,
    "update_time": 1531906043136,
    "duration": 4200,
    "req_body": '{"file": "x.jar", "conf": {"spark.hadoop.fs.obs.secret.key": "CANARY-SK-123"}}',
}


def test_a_documented_batch_object_becomes_a_full_job() -> None:
    job = parse_job(DOC_EXAMPLE, default_queue="fallback")
    assert job.id == DOC_EXAMPLE["id"]
    assert job.state is JobState.RUNNING
    assert job.raw_state == "running"
    assert job.queue == "etl_queue"
    assert (job.name, job.owner, job.app_id, job.sc_type) == (
        "nightly-etl",
        "alice",
        "batch-session-0a324461:8998",
        "A",
    )
    assert job.create_time == datetime(2018, 7, 18, 9, 27, 23, 36000, tzinfo=UTC)
    assert job.update_time == datetime(2018, 7, 18, 9, 27, 23, 136000, tzinfo=UTC)
    assert job.duration_ms == 4200
    assert job.log_tail == ("stdout: ", "stderr: ", "YARN Diagnostics: ")
    assert job.state_since is None


def test_req_body_is_never_copied_into_the_job() -> None:
    job = parse_job(DOC_EXAMPLE, default_queue="q")
    assert "CANARY-SK-123" not in repr(job)


@pytest.mark.parametrize("raw_id", [None, "", "   ", 42, ["x"]])
def test_a_row_without_a_usable_id_is_malformed(raw_id: object) -> None:
    row = {**DOC_EXAMPLE, "id": raw_id}
    with pytest.raises(MalformedJob) as info:
        parse_job(row, default_queue="q")
    assert "CANARY" not in str(info.value)


def test_a_row_with_no_id_at_all_is_malformed() -> None:
    with pytest.raises(MalformedJob):
        parse_job({"state": "running"}, default_queue="q")


@pytest.mark.parametrize(
    ("raw", "state", "raw_state"),
    [
        ("Success", JobState.SUCCESS, "Success"),
        (" DEAD ", JobState.DEAD, " DEAD "),
        ("killed", JobState.KILLED, "killed"),
        ("QUEUED_TIMEOUT", JobState.UNKNOWN, "QUEUED_TIMEOUT"),
        (7, JobState.UNKNOWN, "7"),
        ("x" * 100, JobState.UNKNOWN, "x" * 64),
    ],
)
def test_states_are_normalised_and_the_raw_value_kept(
    raw: object, state: JobState, raw_state: str
) -> None:
    job = parse_job({"id": "j", "state": raw}, default_queue="q")
    assert job.state is state
    assert job.raw_state == raw_state


def test_a_missing_state_is_unknown_with_an_empty_raw_state() -> None:
    job = parse_job({"id": "j"}, default_queue="q")
    assert job.state is JobState.UNKNOWN
    assert job.raw_state == ""


@pytest.mark.parametrize(
    ("fields", "queue"),
    [
        ({"queue": "a", "cluster_name": "b"}, "a"),
        ({"cluster_name": "b"}, "b"),
        ({"queue": "", "cluster_name": "b"}, "b"),
        ({"queue": None}, "fallback"),
        ({}, "fallback"),
    ],
)
def test_the_queue_comes_from_queue_then_cluster_name_then_the_default(
    fields: dict[str, Any], queue: str
) -> None:
    job = parse_job({"id": "j", "state": "running", **fields}, default_queue="fallback")
    assert job.queue == queue


def test_a_null_app_id_and_missing_texts_become_empty_strings() -> None:
    job = parse_job({"id": "j", "state": "starting", "appId": None}, default_queue="q")
    assert (job.app_id, job.name, job.owner, job.sc_type) == ("", "", "", "")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1531906043036, datetime(2018, 7, 18, 9, 27, 23, 36000, tzinfo=UTC)),
        ("1531906043036", datetime(2018, 7, 18, 9, 27, 23, 36000, tzinfo=UTC)),
        (None, None),
        ("yesterday", None),
        ("1.5e12", None),
        (True, None),
        (-5, None),
        (0, None),
        (10**30, None),
        ("١٢٣", None),
        ([1], None),
    ],
)
def test_epoch_millisecond_times_parse_or_become_none(
    value: object, expected: datetime | None
) -> None:
    job = parse_job({"id": "j", "create_time": value, "update_time": value}, default_queue="q")
    assert job.create_time == expected
    assert job.update_time == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(4200, 4200), ("17", 17), (None, None), ("x", None), (-1, None)]
)
def test_duration_is_an_int_or_none(value: object, expected: int | None) -> None:
    assert parse_job({"id": "j", "duration": value}, default_queue="q").duration_ms == expected


def test_only_the_last_ten_log_lines_are_kept() -> None:
    lines = [f"line {i}" for i in range(25)]
    job = parse_job({"id": "j", "log": lines}, default_queue="q")
    assert job.log_tail == tuple(lines[-10:])


def test_log_lines_are_redacted_and_truncated() -> None:
    lines = ["stdout: connecting with password=CANARY-PW-123 ok", "x" * 2000]
    job = parse_job({"id": "j", "log": lines}, default_queue="q")
    assert "CANARY-PW-123" not in job.log_tail[0]
    assert job.log_tail[0].startswith("stdout: connecting with password=")
    assert len(job.log_tail[1]) == 500


@pytest.mark.parametrize("value", [None, "a single string", {"a": 1}, 3])
def test_a_log_that_is_not_a_list_gives_no_lines(value: object) -> None:
    assert parse_job({"id": "j", "log": value}, default_queue="q").log_tail == ()


def test_non_string_log_entries_are_skipped() -> None:
    job = parse_job({"id": "j", "log": ["a", None, 3, "b"]}, default_queue="q")
    assert job.log_tail == ("a", "b")
