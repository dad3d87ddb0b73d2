"""The Alertmanager sink: pure rendering, status classification, config, and a real Alertmanager.

The first part needs no binary (the "Alertmanager" is the recording `Receiver`); the last part
starts the Debian `prometheus-alertmanager` and checks that our alerts fire and resolve through
it to a webhook receiver. Those tests skip without the binary, and fail in CI (REQUIRE_TOOLS=1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from monitor.codec import format_time, parse_time
from monitor.config.sinks import AlertmanagerSinkSettings
from monitor.models import Event, EventKind, Job, JobState, Notification, event_id_for
from monitor.sinks.alertmanager import (
    FAILED,
    AlertmanagerSink,
    AlertRules,
    render,
)
from monitor.sinks.base import SinkError
from tests.conftest import FakeClock, require_tool
from tests.fakes.alertmanager import RealAlertmanager, free_port
from tests.fakes.receiver import Receiver, Reply

PROJECT = "0123456789abcdef"
T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
PASSWORD = "CANARY-am-basic-password-01"
TOKEN = "CANARY-am-bearer-token-0001"
RULES = AlertRules(project_id=PROJECT)


def make_event(
    job_id: str = "job-1",
    *,
    name: str = "nightly_etl",
    queue: str = "etl",
    to: JobState | None = JobState.DEAD,
    frm: JobState | None = JobState.RUNNING,
    kind: EventKind = EventKind.TRANSITION,
    at: datetime = T0,
    **job_fields: Any,
) -> Event:
    """An event of one job; `to=None` with `kind=VANISHED` for a vanished job."""
    job = Job(
        id=job_id,
        state=to or frm or JobState.UNKNOWN,
        queue=queue,
        name=name,
        update_time=at - timedelta(seconds=30),
        **job_fields,
    )
    event_id = event_id_for(queue, job_id, kind, frm, to, at)
    return Event(event_id, kind, queue, job, frm, to, at)


def ok(job_id: str = "job-1", *, name: str = "nightly_etl", at: datetime = T0) -> Event:
    """A `running → success` event."""
    return make_event(job_id, name=name, to=JobState.SUCCESS, at=at)


def note(*events: Event) -> Notification:
    """One notification for the sink named `am`."""
    return Notification("am", events)


# --- render: pure --------------------------------------------------------------------------


def test_a_failure_fires_one_alert_with_identity_labels_ending_after_the_resolve_timeout() -> None:
    plan = render(note(make_event()), {}, now=T0, rules=RULES)

    assert len(plan.firing) == 1
    assert plan.resolved == ()
    [alert] = plan.body
    assert alert["labels"] == {
        "alertname": FAILED,
        "severity": "critical",
        "project": "default",
        "queue": "etl",
        "job_name": "nightly_etl",
        "job_id": "job-1",
        "project_id": PROJECT,
    }
    assert alert["endsAt"] == format_time(T0 + timedelta(minutes=5))
    assert alert["startsAt"] == format_time(T0 - timedelta(seconds=30))
    assert "generatorURL" not in alert


@pytest.mark.parametrize(
    ("kind", "frm", "to"),
    [
        (EventKind.TRANSITION, JobState.RUNNING, JobState.KILLED),
        (EventKind.TRANSITION, JobState.STARTING, JobState.ERROR),
        (EventKind.APPEARED, None, JobState.DEAD),
        (EventKind.VANISHED, JobState.RUNNING, None),
    ],
)
def test_dead_killed_error_and_vanished_jobs_all_fire_the_failed_alert(
    kind: EventKind, frm: JobState | None, to: JobState | None
) -> None:
    plan = render(note(make_event(kind=kind, frm=frm, to=to)), {}, now=T0, rules=RULES)

    assert [a["labels"]["alertname"] for a in plan.body] == [FAILED]


@pytest.mark.parametrize("to", [JobState.RUNNING, JobState.SUCCESS, JobState.STARTING])
def test_a_healthy_event_with_nothing_active_fires_nothing(to: JobState) -> None:
    plan = render(note(make_event(to=to, frm=JobState.STARTING)), {}, now=T0, rules=RULES)

    assert plan.body == ()


def test_static_labels_are_added_may_set_severity_and_empty_job_names_are_left_out() -> None:
    rules = AlertRules(project_id=PROJECT, labels={"team": "data", "severity": "page"})

    [alert] = render(note(make_event(name="")), {}, now=T0, rules=rules).body

    assert alert["labels"]["team"] == "data"
    assert alert["labels"]["severity"] == "page"
    assert "job_name" not in alert["labels"]
    assert "(unnamed)" in alert["annotations"]["description"]


def test_the_description_has_what_on_call_needs_with_log_secrets_redacted() -> None:
    rules = AlertRules(
        project_id=PROJECT, console_url=lambda event: f"https://console/x/{event.job.id}"
    )
    event = make_event(
        owner="alice",
        app_id="application_1_2",
        duration_ms=(3600 + 125) * 1000,
        log_tail=("line one", "spark.password=hunter2-secret", "Exception: boom"),
    )

    [alert] = render(note(event), {}, now=T0, rules=rules).body

    notes = alert["annotations"]
    assert notes["summary"] == "DLI job nightly_etl failed on queue etl: running → dead"
    for part in ("alice", "job-1", "application_1_2", "1h02m05s", "Exception: boom"):
        assert part in notes["description"]
    assert "hunter2" not in notes["description"]
    assert notes["console_url"] == alert["generatorURL"] == "https://console/x/job-1"
    assert notes["event_id"] == event.event_id


def test_an_alert_names_its_project_and_region_and_takes_that_projects_id_and_link() -> None:
    rules = AlertRules(
        project_id={"default": PROJECT, "prod": "p-prod"},
        console_url=lambda event: f"https://console/{event.region}",
    )
    event = dataclasses.replace(make_event(), project="prod", region="eu-west-101")

    [alert] = render(note(event), {}, now=T0, rules=rules).body

    labels = alert["labels"]
    assert (labels["project"], labels["region"], labels["project_id"]) == (
        "prod",
        "eu-west-101",
        "p-prod",
    )
    notes = alert["annotations"]
    summary = "DLI job nightly_etl failed on queue etl (project prod): running → dead"
    assert notes["summary"] == summary
    assert "Project: prod (eu-west-101)" in notes["description"]
    assert alert["generatorURL"] == "https://console/eu-west-101"


def test_a_success_in_another_project_does_not_resolve_a_same_named_failure() -> None:
    failed = dataclasses.replace(make_event("job-1"), project="prod", region="r1")
    fired = render(note(failed), {}, now=T0, rules=RULES)
    active = {alert.key: alert for alert in fired.firing}
    other = dataclasses.replace(
        make_event("job-2", frm=JobState.RUNNING, to=JobState.SUCCESS), project="test"
    )
    assert render(note(other), active, now=T0, rules=RULES).resolved == ()
    same = dataclasses.replace(other, project="prod", region="r1")
    assert len(render(note(same), active, now=T0, rules=RULES).resolved) == 1


def test_a_later_successful_run_with_the_same_name_resolves_the_earlier_failure() -> None:
    fired = render(note(make_event("job-1")), {}, now=T0, rules=RULES)
    active = {a.key: a for a in fired.firing}
    later = T0 + timedelta(hours=1)

    plan = render(note(ok("job-2", at=later)), active, now=later, rules=RULES)

    assert plan.firing == ()
    [alert] = plan.body
    assert alert["labels"]["job_id"] == "job-1"
    assert alert["endsAt"] == format_time(later)
    assert "job-2" in alert["annotations"]["resolved_by"]


def test_a_success_of_another_job_name_or_queue_resolves_nothing() -> None:
    fired = render(note(make_event("job-1")), {}, now=T0, rules=RULES)
    active = {a.key: a for a in fired.firing}

    other_name = render(note(ok("job-2", name="weekly")), active, now=T0, rules=RULES)
    other_queue = render(
        note(make_event("job-3", queue="adhoc", to=JobState.SUCCESS)), active, now=T0, rules=RULES
    )

    assert other_name.body == ()
    assert other_queue.body == ()


def test_any_healthy_event_of_the_same_job_id_resolves_its_alert() -> None:
    vanished = make_event(kind=EventKind.VANISHED, to=None, name="")
    fired = render(note(vanished), {}, now=T0, rules=RULES)
    active = {a.key: a for a in fired.firing}

    back = make_event(kind=EventKind.APPEARED, frm=None, to=JobState.RUNNING, name="")
    plan = render(note(back), active, now=T0, rules=RULES)

    assert [a.job_id for a in plan.resolved] == ["job-1"]


def test_a_failure_and_its_fix_in_one_digest_post_only_the_resolution() -> None:
    plan = render(note(make_event("job-1"), ok("job-2")), {}, now=T0, rules=RULES)

    assert plan.firing == ()
    [alert] = plan.body
    assert alert["labels"]["job_id"] == "job-1"
    assert alert["endsAt"] == format_time(T0)


def test_a_resent_failure_keeps_the_start_of_the_active_alert() -> None:
    first = render(note(make_event()), {}, now=T0, rules=RULES)
    active = {a.key: a for a in first.firing}
    later = T0 + timedelta(minutes=10)

    again = render(note(make_event(at=later)), active, now=later, rules=RULES)

    assert again.body[0]["startsAt"] == first.body[0]["startsAt"]
    assert again.body[0]["endsAt"] == format_time(later + timedelta(minutes=5))


# --- send and classify (the recording receiver plays Alertmanager) -------------------------


@pytest.fixture
async def fake_am() -> AsyncIterator[Receiver]:
    async with Receiver() as receiver:
        yield receiver


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def base_url(receiver: Receiver) -> str:
    """The receiver's base URL (the sink appends `/api/v2/alerts`)."""
    return receiver.url.removesuffix("/hook")


def make_sink(
    url: str, session: aiohttp.ClientSession, clock: FakeClock, **kwargs: Any
) -> AlertmanagerSink:
    return AlertmanagerSink("am", url, session=session, project_id=PROJECT, clock=clock, **kwargs)


async def test_a_digest_is_one_post_to_the_v2_alerts_path_with_every_alert(
    fake_am: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sink = make_sink(base_url(fake_am) + "/", session, clock, basic_auth=("ops", PASSWORD))

    await sink.send(note(make_event("job-1"), make_event("job-2", name="other")))

    [request] = fake_am.received
    assert request.path == "/api/v2/alerts"
    assert request.headers["Authorization"].startswith("Basic ")
    assert request.headers["Content-Type"] == "application/json"
    assert sorted(a["labels"]["job_id"] for a in request.json) == ["job-1", "job-2"]
    assert len(sink.active) == 2


async def test_a_bearer_token_is_sent_as_the_authorization_header(
    fake_am: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sink = make_sink(base_url(fake_am), session, clock, bearer_token=TOKEN)

    await sink.send(note(make_event()))

    assert fake_am.received[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_a_success_with_nothing_to_resolve_sends_no_request(
    fake_am: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sink = make_sink(base_url(fake_am), session, clock)

    await sink.send(note(ok()))

    assert fake_am.received == []


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [
        (Reply(400, body="bad label name"), False),
        (Reply(404), False),
        (Reply(500, body="internal"), True),
        (Reply(503), True),
        (Reply(429, headers={"Retry-After": "7"}), True),
    ],
)
async def test_a_failed_post_is_classified_and_the_alert_is_not_kept_active(
    fake_am: Receiver,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    reply: Reply,
    retryable: bool,
) -> None:
    sink = make_sink(base_url(fake_am), session, clock)
    fake_am.script([reply])

    with pytest.raises(SinkError) as caught:
        await sink.send(note(make_event()))

    assert caught.value.retryable is retryable
    assert f"HTTP {reply.status}" in caught.value.reason
    assert sink.active == ()


async def test_a_failed_resolve_keeps_the_alert_active_so_the_retry_resolves_it(
    fake_am: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sink = make_sink(base_url(fake_am), session, clock)
    await sink.send(note(make_event("job-1")))
    fake_am.script([503])

    with pytest.raises(SinkError):
        await sink.send(note(ok("job-2")))
    assert len(sink.active) == 1
    await sink.send(note(ok("job-2")))

    assert not sink.active
    assert fake_am.received[-1].json[0]["endsAt"] == format_time(clock.now)


async def test_a_timeout_is_retryable_and_its_text_holds_no_secret(
    fake_am: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sink = make_sink(base_url(fake_am), session, clock, timeout_s=0.2, bearer_token=TOKEN)
    fake_am.hold()

    with pytest.raises(SinkError) as caught:
        await sink.send(note(make_event()))

    assert caught.value.retryable is True
    assert "within 0.2s" in caught.value.reason
    assert TOKEN not in caught.value.reason
    assert TOKEN not in repr(sink)


async def test_an_unreachable_alertmanager_is_retryable_and_no_password_leaks(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sink = make_sink(
        f"http://127.0.0.1:{free_port()}", session, clock, basic_auth=("ops", PASSWORD)
    )

    with pytest.raises(SinkError) as caught:
        await sink.send(note(make_event()))

    assert caught.value.retryable is True
    assert PASSWORD not in str(caught.value)
    assert caught.value.__context__ is None


async def test_refresh_reposts_active_alerts_with_a_later_end_and_drops_expired_ones(
    fake_am: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sink = make_sink(base_url(fake_am), session, clock, max_alert_age_s=3600)
    await sink.send(note(make_event("old", name="a", at=clock.now)))
    clock.advance(1800)
    await sink.send(note(make_event("new", name="b", at=clock.now)))
    clock.advance(1800 + 60)

    reposted = await sink.refresh()

    assert reposted == 1
    [alert] = fake_am.received[-1].json
    assert alert["labels"]["job_id"] == "new"
    assert alert["endsAt"] == format_time(clock.now + timedelta(minutes=5))
    assert [a.job_id for a in sink.active] == ["new"]


async def test_refresh_with_nothing_active_sends_nothing(
    fake_am: Receiver, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sink = make_sink(base_url(fake_am), session, clock)

    assert await sink.refresh(clock.now) == 0
    assert fake_am.received == []


def test_the_sink_refuses_two_kinds_of_auth_at_once(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    with pytest.raises(ValueError, match="not both"):
        make_sink("http://am:9093", session, clock, basic_auth=("u", "p"), bearer_token="t")


# --- config ----------------------------------------------------------------------------------


def test_the_config_has_sane_defaults() -> None:
    settings = AlertmanagerSinkSettings.model_validate(
        {"name": "am", "type": "alertmanager", "url": "http://alertmanager:9093/"}
    )

    assert settings.url == "http://alertmanager:9093"
    assert settings.resolve_timeout == 300.0
    assert settings.repost_interval == 60.0
    assert settings.max_alert_age == 86400.0
    assert settings.labels == {}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"repost_interval": "5m", "resolve_timeout": "5m"}, "shorter than resolve_timeout"),
        ({"labels": {"job_id": "x"}}, "cannot be overridden"),
        ({"labels": {"bad-name": "x"}}, "not a valid Prometheus label name"),
        ({"labels": {"__meta": "x"}}, "not a valid Prometheus label name"),
        ({"url": f"http://ops:{PASSWORD}@am:9093"}, "must not hold credentials"),
        (
            {"bearer_token": TOKEN, "basic_auth": {"username": "u", "password": PASSWORD}},
            "not both",
        ),
    ],
)
def test_invalid_alertmanager_config_is_rejected_without_echoing_secrets(
    extra: dict[str, Any], message: str
) -> None:
    data = {"name": "am", "type": "alertmanager", "url": "http://am:9093", **extra}

    with pytest.raises(ValidationError) as caught:
        AlertmanagerSinkSettings.model_validate(data)

    errors = caught.value.errors(include_input=False, include_url=False)
    text = " ".join(f"{error['loc']} {error['msg']}" for error in errors)
    assert message in text
    assert PASSWORD not in text
    assert TOKEN not in text


# --- a real Alertmanager -----------------------------------------------------------------------


@pytest.fixture
async def real_am(tmp_path: Path) -> AsyncIterator[tuple[RealAlertmanager, Receiver]]:
    binary = require_tool("prometheus-alertmanager")
    async with Receiver() as receiver, RealAlertmanager(binary, receiver.url, tmp_path) as am:
        yield am, receiver


@pytest.fixture
def wall_clock() -> FakeClock:
    """A hand-moved clock that starts at the real time (Alertmanager judges ends by real time)."""
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


def firing_for(job_id: str) -> Any:
    return lambda p: p["status"] == "firing" and p["alerts"][0]["labels"]["job_id"] == job_id


def resolved_for(job_id: str) -> Any:
    return lambda p: p["status"] == "resolved" and p["alerts"][0]["labels"]["job_id"] == job_id


@pytest.mark.slow
async def test_a_failed_job_reaches_the_receiver_through_alertmanager_and_its_success_resolves_it(
    real_am: tuple[RealAlertmanager, Receiver],
    session: aiohttp.ClientSession,
    wall_clock: FakeClock,
) -> None:
    am, receiver = real_am
    sink = make_sink(am.url, session, wall_clock, labels={"team": "data"})

    await sink.send(note(make_event("job-1", at=wall_clock.now, owner="alice")))
    firing = await am.wait_for(receiver, firing_for("job-1"))
    await sink.send(note(make_event("job-1", frm=JobState.DEAD, to=JobState.SUCCESS)))
    resolved = await am.wait_for(receiver, resolved_for("job-1"))

    labels = firing["alerts"][0]["labels"]
    assert labels == {
        "alertname": FAILED,
        "severity": "critical",
        "team": "data",
        "project": "default",
        "queue": "etl",
        "job_name": "nightly_etl",
        "job_id": "job-1",
        "project_id": PROJECT,
    }
    assert "alice" in firing["alerts"][0]["annotations"]["description"]
    assert resolved["alerts"][0]["labels"] == labels
    assert sink.active == ()


@pytest.mark.slow
async def test_a_later_successful_run_of_the_same_name_resolves_the_failure_in_alertmanager(
    real_am: tuple[RealAlertmanager, Receiver],
    session: aiohttp.ClientSession,
    wall_clock: FakeClock,
) -> None:
    am, receiver = real_am
    sink = make_sink(am.url, session, wall_clock)

    await sink.send(note(make_event("run-1", at=wall_clock.now)))
    await am.wait_for(receiver, firing_for("run-1"))
    await sink.send(note(ok("run-2", at=wall_clock.now)))
    resolved = await am.wait_for(receiver, resolved_for("run-1"))

    assert resolved["alerts"][0]["labels"]["job_name"] == "nightly_etl"
    assert not any(
        a["labels"]["job_id"] == "run-2" for p in receiver.payloads() for a in p["alerts"]
    )


@pytest.mark.slow
async def test_a_digest_creates_every_alert_and_refresh_moves_their_end_in_alertmanager(
    real_am: tuple[RealAlertmanager, Receiver],
    session: aiohttp.ClientSession,
    wall_clock: FakeClock,
) -> None:
    am, _ = real_am
    sink = make_sink(am.url, session, wall_clock, resolve_timeout_s=120)

    now = wall_clock.now
    await sink.send(note(make_event("a", at=now), make_event("b", name="x", at=now)))
    before = {a["labels"]["job_id"]: parse_time(a["endsAt"]) for a in await am.alerts()}
    wall_clock.advance(60)
    assert await sink.refresh() == 2
    after = {a["labels"]["job_id"]: parse_time(a["endsAt"]) for a in await am.alerts()}

    assert set(before) == {"a", "b"}
    assert after["a"] - before["a"] == timedelta(seconds=60)
    assert after["b"] == wall_clock.now + timedelta(seconds=120)


@pytest.mark.slow
async def test_alertmanager_rejects_an_invalid_label_name_as_a_permanent_error(
    real_am: tuple[RealAlertmanager, Receiver],
    session: aiohttp.ClientSession,
    wall_clock: FakeClock,
) -> None:
    am, _ = real_am
    sink = make_sink(am.url, session, wall_clock, labels={"bad-name": "x"})

    with pytest.raises(SinkError) as caught:
        await sink.send(note(make_event(at=wall_clock.now)))

    assert caught.value.retryable is False
    assert "HTTP 400" in caught.value.reason
    assert await am.alerts() == []
