"""The codec: exact round trips of jobs and events, and the documented webhook payload."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from monitor.codec import (
    CodecError,
    digest_payload,
    event_from_dict,
    event_to_dict,
    format_time,
    job_from_dict,
    job_to_dict,
    parse_time,
    webhook_payload,
)
from monitor.models import Event, EventKind, Job, JobState, event_id_for

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)


def full_job(**changes: Any) -> Job:
    base: dict[str, Any] = {
        "id": "0a32f1c2-5d6e-4f70-8a9b-0c1d2e3f4a5b",
        "state": JobState.DEAD,
        "queue": "etl",
        "name": "nightly_etl",
        "owner": "bob",
        "app_id": "application_1700000000000_0042",
        "sc_type": "A",
        "raw_state": "Dead",
        "create_time": T0 - timedelta(minutes=12, seconds=3, microseconds=250),
        "update_time": T0,
        "duration_ms": 723000,
        "log_tail": ("line one", "YARN Diagnostics: exit code 1"),
        "state_since": T0 + timedelta(microseconds=7),
    }
    base.update(changes)
    return Job(**base)


def make_event(kind: EventKind, from_state: JobState | None, to_state: JobState | None) -> Event:
    job = full_job()
    return Event(
        event_id=event_id_for("etl", job.id, kind, from_state, to_state, T0),
        kind=kind,
        target="etl",
        job=job,
        from_state=from_state,
        to_state=to_state,
        observed_at=T0,
    )


def test_a_job_with_every_field_set_round_trips_exactly() -> None:
    job = full_job()
    data = job_to_dict(job)
    assert job_from_dict(json.loads(json.dumps(data))) == job


def test_a_minimal_job_round_trips_with_nulls_and_empty_strings() -> None:
    job = Job(id="j1", state=JobState.UNKNOWN, queue="q")
    data = json.loads(json.dumps(job_to_dict(job)))
    assert data["create_time"] is None and data["log_tail"] == []
    assert job_from_dict(data) == job


@pytest.mark.parametrize(
    ("kind", "from_state", "to_state"),
    [
        (EventKind.TRANSITION, JobState.RUNNING, JobState.DEAD),
        (EventKind.APPEARED, None, JobState.DEAD),
        (EventKind.VANISHED, JobState.RUNNING, None),
    ],
)
def test_every_kind_of_event_round_trips_exactly(
    kind: EventKind, from_state: JobState | None, to_state: JobState | None
) -> None:
    event = make_event(kind, from_state, to_state)
    assert event_from_dict(json.loads(json.dumps(event_to_dict(event)))) == event


def test_times_are_written_in_utc_with_a_z_suffix() -> None:
    plus_eight = timezone(timedelta(hours=8))
    assert format_time(datetime(2026, 11, 29, 18, 0, tzinfo=plus_eight)) == "2026-11-29T10:00:00Z"
    assert format_time(T0 + timedelta(microseconds=5)) == "2026-11-29T10:00:00.000005Z"
    assert parse_time("2026-11-29T10:00:00Z") == T0


def test_a_naive_time_is_refused_rather_than_guessed() -> None:
    with pytest.raises(CodecError, match="naive"):
        format_time(datetime(2026, 11, 29, 10, 0))
    with pytest.raises(CodecError, match="offset"):
        parse_time("2026-11-29T10:00:00")


@pytest.mark.parametrize(
    "broken",
    [
        {"state": "dead", "queue": "etl"},
        {"id": "j", "state": "exploding", "queue": "etl"},
        {"id": 7, "state": "dead", "queue": "etl"},
        {"id": "j", "state": "dead", "queue": "etl", "create_time": "yesterday"},
        {"id": "j", "state": "dead", "queue": "etl", "duration_ms": "12"},
    ],
)
def test_a_broken_job_record_raises_a_codec_error(broken: dict[str, Any]) -> None:
    with pytest.raises(CodecError):
        job_from_dict(broken)


def test_an_event_record_without_a_job_raises_a_codec_error() -> None:
    data = event_to_dict(make_event(EventKind.TRANSITION, JobState.RUNNING, JobState.DEAD))
    del data["job"]
    with pytest.raises(CodecError, match="job"):
        event_from_dict(data)


def test_the_webhook_payload_has_exactly_the_documented_shape() -> None:
    event = make_event(EventKind.TRANSITION, JobState.RUNNING, JobState.DEAD)
    payload = json.loads(json.dumps(webhook_payload(event, "proj-1")))
    assert payload == {
        "event_id": event.event_id,
        "kind": "transition",
        "project": "default",
        "region": "",
        "project_id": "proj-1",
        "queue": "etl",
        "target": "etl",
        "job": {
            "id": "0a32f1c2-5d6e-4f70-8a9b-0c1d2e3f4a5b",
            "name": "nightly_etl",
            "owner": "bob",
            "app_id": "application_1700000000000_0042",
            "sc_type": "A",
            "create_time": "2026-11-29T09:47:56.999750Z",
            "update_time": "2026-11-29T10:00:00Z",
            "duration_ms": 723000,
            "log_tail": ["line one", "YARN Diagnostics: exit code 1"],
            "raw_state": "Dead",
        },
        "from_state": "running",
        "to_state": "dead",
        "observed_at": "2026-11-29T10:00:00Z",
        "streak": 0,
        "detail": "",
    }


def test_the_webhook_payload_uses_null_for_the_missing_side_of_appeared_and_vanished() -> None:
    appeared = webhook_payload(make_event(EventKind.APPEARED, None, JobState.DEAD), "p")
    vanished = webhook_payload(make_event(EventKind.VANISHED, JobState.RUNNING, None), "p")
    assert (appeared["kind"], appeared["from_state"], appeared["to_state"]) == (
        "appeared",
        None,
        "dead",
    )
    assert (vanished["kind"], vanished["from_state"], vanished["to_state"]) == (
        "vanished",
        "running",
        None,
    )


def test_the_webhook_payload_writes_unknown_times_as_null() -> None:
    job = full_job(create_time=None, update_time=None, duration_ms=None)
    event = Event("e1", EventKind.APPEARED, "etl", job, None, JobState.DEAD, T0)
    payload = webhook_payload(event, "p")
    assert payload["job"]["create_time"] is None
    assert payload["job"]["update_time"] is None
    assert payload["job"]["duration_ms"] is None


def test_an_event_round_trips_its_project_and_region() -> None:
    event = dataclasses.replace(
        make_event(EventKind.TRANSITION, JobState.RUNNING, JobState.DEAD),
        target="prod/etl",
        project="prod",
        region="cn-north-4",
    )
    data = json.loads(json.dumps(event_to_dict(event)))
    assert (data["project"], data["region"]) == ("prod", "cn-north-4")
    assert event_from_dict(data) == event


def test_an_event_stored_before_projects_existed_loads_into_the_default_project() -> None:
    data = event_to_dict(make_event(EventKind.TRANSITION, JobState.RUNNING, JobState.DEAD))
    del data["project"], data["region"]
    event = event_from_dict(data)
    assert (event.project, event.region) == ("default", "")


def test_the_webhook_payload_names_the_project_and_region_of_its_event() -> None:
    event = dataclasses.replace(
        make_event(EventKind.TRANSITION, JobState.RUNNING, JobState.DEAD),
        target="prod/etl",
        project="prod",
        region="cn-north-4",
    )
    payload = webhook_payload(event, "p1")
    assert (payload["project"], payload["region"], payload["project_id"]) == (
        "prod",
        "cn-north-4",
        "p1",
    )
    assert (payload["queue"], payload["target"]) == ("etl", "prod/etl")


def test_a_digest_across_projects_gives_each_event_its_own_project_id() -> None:
    first = make_event(EventKind.TRANSITION, JobState.RUNNING, JobState.DEAD)
    second = dataclasses.replace(first, event_id="e2", project="prod", region="eu-west-0")
    ids = {"default": "p-default", "prod": "p-prod"}
    payload = digest_payload((first, second), "n1", lambda name: ids[name])
    assert (payload["project"], payload["project_id"]) == (None, None)
    assert [e["project_id"] for e in payload["events"]] == ["p-default", "p-prod"]
    alone = digest_payload((second,), "n2", lambda name: ids[name])
    assert (alone["project"], alone["project_id"]) == ("prod", "p-prod")
