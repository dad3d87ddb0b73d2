"""Seeing and trying sinks before trusting them: what `render` prints and `test-sink` sends.

`render_body` builds the configured sinks (`wiring.build_sinks`, the same code the daemon uses,
templates included) and returns exactly the body one sink would post for an event, without
sending it: the built-in sample (`sample`), a sample digest (`sample-digest`), or an event
from a JSON file. `send_test_messages` sends one clearly marked test message to each (or one)
sink and reports each outcome with the vendor's error text. Samples and test messages belong to
the first configured DLI project. Samples use a fixed clock, so their rendering is
reproducible (the sample messages in docs/sinks.md are checked against it).

What does not live here: argument parsing and exit codes (`monitor.cli`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from monitor.codec import CodecError, event_from_dict
from monitor.config import Settings
from monitor.models import Clock, Event, EventKind, Job, JobState, Notification, utc_now
from monitor.sinks import AlertmanagerSink, SinkError
from monitor.sinks.base import Sink, safe_text
from monitor.wiring import SessionPool, build_sinks

SAMPLE = "sample"
SAMPLE_DIGEST = "sample-digest"
SAMPLE_NOW = datetime(2026, 11, 29, 2, 43, 30, tzinfo=UTC)
"""The fixed "now" samples are rendered at (two minutes after the sample event)."""
TEST_JOB_NAME = "dli-monitor-test"
TEST_DETAIL = "TEST MESSAGE from `dli-monitor test-sink`: no DLI job changed."


class PreviewError(Exception):
    """A preview or test cannot start: unknown sink, unreadable or invalid event file."""


@runtime_checkable
class Previewable(Protocol):
    """A sink that can show the body it would send without sending it."""

    def preview(self, notification: Notification) -> object:
        """The body a send would post now (a JSON value, or text for the console)."""
        ...


def sample_event() -> Event:
    """A `running → dead` event of a realistic job: the 3rd failure in a row, with logs.

    Its log tail is as the poller hands it on: already redacted.
    """
    job = Job(
        id="0a324461-d9d9-45da-a52a-3b3c7a3d809e",
        state=JobState.DEAD,
        queue="etl",
        name="nightly_etl",
        owner="bob",
        app_id="application_1700000000000_0042",
        sc_type="A",
        raw_state="dead",
        create_time=datetime(2026, 11, 29, 2, 0, 0, tzinfo=UTC),
        update_time=datetime(2026, 11, 29, 2, 41, 10, tzinfo=UTC),
        duration_ms=2_470_000,
        log_tail=(
            "INFO SparkContext: Running Spark version 3.3.1",
            "INFO JdbcSource: connecting with password=***",
            "ERROR Executor: Exception in task 3.0 in stage 7.0",
            "YARN Diagnostics: User class threw exception: java.lang.OutOfMemoryError",
        ),
        state_since=datetime(2026, 11, 29, 2, 41, 30, tzinfo=UTC),
    )
    return Event(
        event_id="3f9c2b7e5d1a4c8e9b0f6a2d7c4e1b93",
        kind=EventKind.TRANSITION,
        target="etl",
        job=job,
        from_state=JobState.RUNNING,
        to_state=JobState.DEAD,
        observed_at=datetime(2026, 11, 29, 2, 41, 30, tzinfo=UTC),
        streak=3,
    )


def sample_digest() -> tuple[Event, ...]:
    """Fourteen events on two queues (failures and successes): more than a digest lists."""
    base = sample_event()
    events = []
    for number in range(14):
        failed = number % 3 != 2
        queue = "etl" if number < 9 else "adhoc"
        state = JobState.DEAD if failed else JobState.SUCCESS
        job = replace(
            base.job,
            id=f"0a324461-d9d9-45da-a52a-{number:012d}",
            name=f"daily_report_{number:02d}",
            queue=queue,
            state=state,
            raw_state=state.value,
            owner="alice" if number % 2 else "bob",
            state_since=base.observed_at - timedelta(seconds=20 * number),
        )
        events.append(
            replace(
                base,
                event_id=f"{number:02d}" + base.event_id[2:],
                target=queue,
                job=job,
                to_state=state,
                streak=1 if failed else 0,
            )
        )
    return tuple(events)


def trial_events(now: datetime) -> tuple[Event, ...]:
    """The test message's event: a marked job reaching `success`, with a fresh event id."""
    job = Job(
        id=f"dli-monitor-test-{uuid.uuid4().hex[:12]}",
        state=JobState.SUCCESS,
        queue="dli-monitor-test",
        name=TEST_JOB_NAME,
        owner="dli-monitor",
        raw_state="success",
        update_time=now,
        duration_ms=0,
        state_since=now,
    )
    event = Event(
        event_id=uuid.uuid4().hex,
        kind=EventKind.TRANSITION,
        target=job.queue,
        job=job,
        from_state=JobState.RUNNING,
        to_state=JobState.SUCCESS,
        observed_at=now,
        detail=TEST_DETAIL,
    )
    return (event,)


def _alertmanager_test(event: Event) -> tuple[Event, Event]:
    """For Alertmanager: the test job fails (one alert fires) and then succeeds (it resolves)."""
    dead = replace(
        event,
        event_id=uuid.uuid4().hex,
        job=replace(event.job, state=JobState.DEAD, raw_state="dead"),
        to_state=JobState.DEAD,
    )
    return dead, event


def load_events(path: str | Path) -> tuple[Event, ...]:
    """Events from a JSON file: one event or a list (a digest), stored or webhook form."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PreviewError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
    except ValueError as exc:
        raise PreviewError(f"{path} is not JSON: {exc}") from None
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) for item in items):
        raise PreviewError(f"{path}: expected an event object or a non-empty list of them")
    try:
        return tuple(event_from_dict(_stored_form(item)) for item in items)
    except CodecError as exc:
        raise PreviewError(f"{path}: {exc}") from None


def _stored_form(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A generic-webhook payload turned into the stored form; a stored event as it is."""
    job = data.get("job")
    if not isinstance(job, dict) or "state" in job:
        return data
    state = data.get("to_state") or data.get("from_state") or "unknown"
    queue = data.get("queue", "")
    return {
        **data,
        "target": data.get("target", queue),
        "job": {**job, "state": state, "queue": queue},
    }


def pick_events(spec: str, settings: Settings | None = None) -> tuple[tuple[Event, ...], Clock]:
    """The events `--event` names, and the clock to render them at (fixed for samples).

    Samples are put in the first project of `settings` (when given)."""
    if spec == SAMPLE:
        return _in_project((sample_event(),), settings), lambda: SAMPLE_NOW
    if spec == SAMPLE_DIGEST:
        return _in_project(sample_digest(), settings), lambda: SAMPLE_NOW
    return load_events(spec), utc_now


def _in_project(events: tuple[Event, ...], settings: Settings | None) -> tuple[Event, ...]:
    """The events as if they happened in the first configured project."""
    if settings is None:
        return events
    project = settings.projects[0]
    return tuple(
        replace(e, project=project.name, region=project.region, target=project.key(e.target))
        for e in events
    )


def _selected(sinks: Mapping[str, Sink], names: Iterable[str]) -> list[Sink]:
    chosen = []
    for name in names:
        if name not in sinks:
            known = ", ".join(sinks) or "none configured"
            raise PreviewError(f"no sink named {name!r} (sinks: {known})")
        chosen.append(sinks[name])
    return chosen


def format_body(body: object) -> str:
    """A body as printed: JSON indented (non-ASCII kept), text as it is; ends with a newline."""
    text = body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False)
    return text.rstrip("\n") + "\n"


async def render_body(settings: Settings, sink_name: str, spec: str) -> str:
    """Exactly what sink `sink_name` would send for the events `spec` names; sends nothing."""
    events, clock = pick_events(spec, settings)
    async with SessionPool() as sessions:
        (sink,) = _selected(build_sinks(settings, sessions, clock), [sink_name])
        if not isinstance(sink, Previewable):
            raise PreviewError(f"sink {sink_name!r} cannot show what it would send")
        return format_body(sink.preview(Notification(sink=sink.name, events=events)))


@dataclass(frozen=True, slots=True)
class SinkOutcome:
    """How one sink took the test message."""

    sink: str
    kind: str
    ok: bool
    reason: str = ""
    retryable: bool = False

    def line(self) -> str:
        """`ok      name (type)` or `FAILED  name (type): reason`."""
        if self.ok:
            return f"ok      {self.sink} ({self.kind})"
        again = " [retryable]" if self.retryable else ""
        return f"FAILED  {self.sink} ({self.kind}): {self.reason}{again}"


async def _try(sink: Sink, kind: str, clock: Clock, settings: Settings) -> SinkOutcome:
    events = _in_project(trial_events(clock()), settings)
    batches = _alertmanager_test(events[0]) if isinstance(sink, AlertmanagerSink) else events
    try:
        for event in batches:
            await sink.send(Notification(sink=sink.name, events=(event,)))
    except SinkError as error:
        return SinkOutcome(sink.name, kind, False, error.reason, error.retryable)
    except Exception as exc:  # a broken sink is reported, not allowed to stop the others
        return SinkOutcome(sink.name, kind, False, safe_text(f"{type(exc).__name__}: {exc}"))
    return SinkOutcome(sink.name, kind, True)


async def send_test_messages(
    settings: Settings, names: Sequence[str] = (), *, clock: Clock = utc_now
) -> list[SinkOutcome]:
    """Send a marked test message to each sink in `names` (default: all), one after another."""
    kinds = {entry.name: entry.type for entry in settings.sinks}
    async with SessionPool() as sessions:
        sinks = build_sinks(settings, sessions, clock)
        chosen = _selected(sinks, names or list(sinks))
        return [await _try(sink, kinds.get(sink.name, "?"), clock, settings) for sink in chosen]
