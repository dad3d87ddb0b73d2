"""`dli-monitor explain JOB`: what the monitor saw of a job and what it did about it, read-only.

`explain(store, job, ...)` takes a job id, or a job name (then its newest `runs` runs), reads
what the store kept (`TrailStore.job_trails`: sightings, events with their routing decisions,
outbox rows and attempts; and the name's rule memory) and assembles an `Explanation`: per run
the states seen with their cycle and time, each event with the routes that matched, the silence
or quiet hours that held it and every attempt per sink with the vendor's answer and the next
retry, the lifecycle rules' verdicts (`monitor.explain_rules`), and, wherever nothing was sent,
the reason in one line. `to_json` is the `--json` and HTTP shape; `explain_view` serves it
(`GET /api/explain/{job}`). It only reads: open the store with `monitor.store.open_reader`.

What does not live here: the text rendering (`monitor.explain_render`), the tables
(`monitor.store`), how the records were made (`monitor.routing`, `monitor.dispatch`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from monitor.codec import format_time
from monitor.config.rules import RulesSettings
from monitor.explain_rules import RuleVerdict, rule_verdicts, utc_text
from monitor.models import Clock, JobState
from monitor.models_explain import (
    DEFERRED,
    RETRY,
    Attempt,
    EventRecord,
    JobTrail,
    OutboxState,
    RoutingRecord,
    Sighting,
)
from monitor.store.contract import RuleMemoryStore, TrailStore

DEFAULT_RUNS = 3
"""How many of a name's newest runs `explain` shows."""


class ExplainSource(TrailStore, RuleMemoryStore, Protocol):
    """What `explain` reads: the trail and the rule memory (every `Store` is one)."""


@dataclass(frozen=True, slots=True)
class SinkStory:
    """What happened to one event at one sink."""

    sink: str
    status: str
    """`delivered`, `pending` or `failed` (the outbox row's)."""
    reason: str
    """One line: how it was sent, or why not (yet)."""
    next_attempt_at: datetime | None = None
    """A pending row is not tried before then."""
    attempts: tuple[Attempt, ...] = ()


@dataclass(frozen=True, slots=True)
class EventStory:
    """One event of a run: what changed, where routing sent it, and what each sink did."""

    event_id: str
    kind: str
    from_state: str | None
    to_state: str | None
    observed_at: datetime
    cycle_id: str
    detail: str
    streak: int
    routing: RoutingRecord | None
    sinks: tuple[SinkStory, ...]
    reason: str
    """Why no sink got the event at all (silence, no route, ...); empty when one did."""


@dataclass(frozen=True, slots=True)
class RunStory:
    """One job (one run) on one target: states seen, events, rule verdicts, and the gist."""

    target: str
    job_id: str
    name: str
    queue: str
    state: str
    """The last state seen."""
    sightings: tuple[Sighting, ...]
    events: tuple[EventStory, ...]
    rules: tuple[RuleVerdict, ...]
    reason: str
    """When nothing about the run was delivered, why, in one line; empty otherwise."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """The answer to `explain JOB`: the runs found by id or by name."""

    query: str
    matched_by: str
    """`id` or `name`."""
    at: datetime
    runs: tuple[RunStory, ...]


async def explain(
    store: ExplainSource,
    job: str,
    *,
    now: datetime,
    runs: int = DEFAULT_RUNS,
    rules: RulesSettings | None = None,
) -> Explanation | None:
    """The history of the job with id `job`, else of the newest `runs` jobs named `job`; None
    when the store knows neither. `rules` are the thresholds the verdicts compare with."""
    settings = rules if rules is not None else RulesSettings()
    trails, matched_by = await store.job_trails(job), "id"
    if not trails:
        matched_by = "name"
        for target, job_id in await store.jobs_named(job, limit=max(1, runs)):
            trails += [t for t in await store.job_trails(job_id) if t.target == target]
    if not trails:
        return None
    stories = [await _run(store, trail, settings, now) for trail in trails]
    return Explanation(query=job, matched_by=matched_by, at=now, runs=tuple(stories))


async def _run(
    store: ExplainSource, trail: JobTrail, settings: RulesSettings, now: datetime
) -> RunStory:
    """One trail as a story."""
    memory = await store.load_rule_memory(trail.target)
    events = tuple(_event(record, now) for record in trail.events)
    last = trail.job.state if trail.job is not None else _last_state(trail)
    queue = trail.job.queue if trail.job is not None else _last_queue(trail)
    return RunStory(
        target=trail.target,
        job_id=trail.job_id,
        name=trail.name,
        queue=queue,
        state=last,
        sightings=trail.sightings,
        events=events,
        rules=rule_verdicts(trail, memory.names.get(trail.name), settings, now),
        reason=_run_reason(trail, events),
    )


def _last_state(trail: JobTrail) -> str:
    if trail.sightings:
        return trail.sightings[-1].state.value
    states = [r.event.to_state for r in trail.events if r.event.to_state is not None]
    return states[-1].value if states else JobState.UNKNOWN.value


def _last_queue(trail: JobTrail) -> str:
    queues = [s.queue for s in trail.sightings] + [r.event.queue for r in trail.events]
    return next((queue for queue in reversed(queues) if queue), "")


def event_story(record: EventRecord, now: datetime) -> EventStory:
    """One stored event as `explain` tells it: its routing and, per sink, the one-line outcome
    (what the status page lists under recent events)."""
    return _event(record, now)


def _event(record: EventRecord, now: datetime) -> EventStory:
    """One event with its routing and, per sink, what happened."""
    event = record.event
    sinks = tuple(_sink(row, record, now) for row in record.outbox)
    return EventStory(
        event_id=event.event_id,
        kind=event.kind.value,
        from_state=event.from_state.value if event.from_state else None,
        to_state=event.to_state.value if event.to_state else None,
        observed_at=event.observed_at,
        cycle_id=record.cycle_id,
        detail=event.detail,
        streak=event.streak,
        routing=record.routing,
        sinks=sinks,
        reason="" if sinks else _unsent(record.routing),
    )


def _unsent(routing: RoutingRecord | None) -> str:
    """Why an event has no outbox row at all."""
    if routing is None:
        return "no sink: stored before routing decisions were recorded"
    if routing.silence is not None:
        silence = routing.silence
        what = f" ({silence.what})" if silence.what else ""
        return f"silenced by silence #{silence.id}{what} until {utc_text(silence.until)}"
    return routing.unrouted or "no sink was chosen"


def _sink(row: OutboxState, record: EventRecord, now: datetime) -> SinkStory:
    """What happened at one sink, and the line that says it."""
    attempts = tuple(a for a in record.attempts if a.sink == row.sink)
    sends = [a for a in attempts if a.outcome != DEFERRED]
    last = attempts[-1] if attempts else None
    waiting = row.next_attempt_at if row.status == "pending" else None
    if row.status == "delivered":
        sent = sends[-1] if sends else None
        done = utc_text(row.done_at) if row.done_at is not None else "?"
        if sent is not None and sent.digest_id is not None:
            reason = (
                f"budget: in digest #{sent.digest_id} ({sent.digest_size} events) sent at {done}"
            )
        else:
            reason = f"delivered at {done} (attempt {row.attempts})"
    elif row.status == "failed":
        reason = f"failed: {row.last_error}" if row.last_error else "failed"
    elif last is not None and last.outcome == RETRY:
        reason = (
            f"retrying: attempt {last.attempt} failed ({last.answer});"
            f" next retry at {utc_text(row.next_attempt_at)}"
        )
    elif last is not None and last.outcome == DEFERRED:
        reason = f"budget: deferred until {utc_text(row.next_attempt_at)} ({last.answer})"
    else:
        reason = _waiting(row, record.routing, now)
    return SinkStory(row.sink, row.status, reason, waiting, attempts)


def _waiting(row: OutboxState, routing: RoutingRecord | None, now: datetime) -> str:
    """A pending row never attempted: held by quiet hours, or due."""
    planned = next((p for p in routing.plan if p.sink == row.sink), None) if routing else None
    if planned is not None and planned.quiet_until is not None and now < planned.quiet_until:
        return (
            f"held by quiet hours of route #{planned.route} until {utc_text(planned.quiet_until)}"
        )
    when = utc_text(row.next_attempt_at)
    return f"pending: due at {when}" if now < row.next_attempt_at else f"pending: due since {when}"


def _run_reason(trail: JobTrail, events: tuple[EventStory, ...]) -> str:
    """Why nothing about the run was delivered (empty when something was)."""
    if any(s.status == "delivered" for e in events for s in e.sinks):
        return ""
    if not events:
        first = trail.sightings[0] if trail.sightings else None
        if first is not None and first.baseline:
            cycle = f" (cycle {first.cycle_id})" if first.cycle_id else ""
            return f"first seen in the silent baseline at {utc_text(first.seen_at)}{cycle}"
        return "no event: no change was seen after the job was first recorded (or it was pruned)"
    latest = events[-1]
    return latest.reason or next((s.reason for s in latest.sinks), "")


def to_json(explanation: Explanation) -> dict[str, Any]:
    """The explanation as JSON-able dicts (the `--json` and HTTP shape): every field of every
    value, times as RFC 3339 UTC strings, states and kinds as their names."""
    return {f.name: _plain(getattr(explanation, f.name)) for f in fields(explanation)}


def _plain(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


ExplainView = Callable[[str, int], Awaitable[Mapping[str, object] | None]]
"""Answers `GET /api/explain/{job}?runs=N`: the JSON of `explain`, or None for an unknown job."""


def explain_view(store: ExplainSource, rules: RulesSettings, clock: Clock) -> ExplainView:
    """The daemon's `/api/explain` view over its own store (reads only)."""

    async def view(job: str, runs: int) -> Mapping[str, object] | None:
        found = await explain(store, job, now=clock(), runs=runs, rules=rules)
        return None if found is None else to_json(found)

    return view
