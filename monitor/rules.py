"""The lifecycle rules: pure functions that find events beyond a state change.

`evaluate(snapshot, events, memory, ...)` runs after the differ, over the target's new
snapshot and the events the differ found, and returns a `RuleOutcome`:

- `stuck`: a job in `starting` (or `recovering`) longer than its threshold;
- `overdue`: a running job older than the absolute limit of the first `overdue` entry whose
  regex matches its whole name, or older than `overdue_factor` times the p95 of that name's own
  recent successful durations (once it has `overdue_min_runs` of them; the last
  `HISTORY_RUNS` are kept);
- failure streaks: a job's failure event carries `streak`, the consecutive failures of its name;
- `recovered`: a job name whose previous run failed has now succeeded.

Each rule fires once per job and condition: a fired rule leaves a `RuleMark` anchored on the
job's `state_since`, and the mark is cleared once the job leaves that state (or the snapshot).
The marks and histories live in `RuleMemory`, which the store loads and, via `HistoryUpdate`,
writes in the same transaction as the poll. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.config.durations import format_duration
from monitor.config.rules import RulesSettings
from monitor.models import (
    Event,
    EventKind,
    HistoryUpdate,
    Job,
    JobState,
    NameHistory,
    RuleMark,
    RuleMemory,
    Snapshot,
    event_id_for,
)

HISTORY_RUNS = 50
"""How many recent successful durations are kept per job name."""
STUCK = EventKind.STUCK.value
OVERDUE = EventKind.OVERDUE.value
SUCCESS = "success"
FAILURE = "failure"

EMPTY_MEMORY = RuleMemory(names={}, marks={})
"""The rule state of a target nothing has been recorded for."""


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """The differ's events annotated with streaks, plus the rule events, and what to persist."""

    events: tuple[Event, ...]
    update: HistoryUpdate

    @property
    def rule_events(self) -> tuple[Event, ...]:
        """Only the events the rules added (stuck, overdue, recovered)."""
        return tuple(e for e in self.events if e.kind.is_rule)


def evaluate(
    snapshot: Snapshot,
    events: Sequence[Event],
    memory: RuleMemory,
    *,
    target: str,
    now: datetime,
    settings: RulesSettings,
) -> RuleOutcome:
    """Apply every lifecycle rule to one target's new snapshot and the differ's events."""
    names = dict(memory.names)
    changed: dict[str, NameHistory] = {}
    out: list[Event] = []
    for event in events:
        for result in _streak(event, names, target=target, now=now):
            out.append(result)
        name = event.job.name
        if name in names and names[name] is not memory.names.get(name):
            changed[name] = names[name]

    kept, cleared = _still_marked(snapshot, memory.marks)
    added: list[RuleMark] = []
    for job in sorted(snapshot.values(), key=_order):
        fired = _fire(job, names.get(job.name), settings, target=target, now=now)
        if fired is None:
            continue
        rule = fired.kind.value
        if (job.id, rule) in kept:
            continue
        out.append(fired)
        added.append(RuleMark(job_id=job.id, rule=rule, anchor=job.state_since))
    update = HistoryUpdate(
        names=tuple(changed[name] for name in sorted(changed)),
        marks_added=tuple(added),
        marks_cleared=tuple(sorted(cleared)),
    )
    return RuleOutcome(tuple(out), update)


def p95(durations: Iterable[float]) -> float:
    """The 95th percentile by nearest rank (the smallest value >= 95 % of the values)."""
    ordered = sorted(durations)
    if not ordered:
        raise ValueError("p95 of no values")
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def overdue_limit(
    job: Job, history: NameHistory | None, settings: RulesSettings
) -> tuple[float, str] | None:
    """The run time after which `job` is overdue, and how that limit came about (None: none)."""
    limits: list[tuple[float, str]] = []
    for entry in settings.overdue:
        if re.fullmatch(entry.job_name, job.name):
            limits.append((entry.max_runtime, f"limit {_fmt(entry.max_runtime)}"))
            break
    runs = history.durations_s if history is not None else ()
    if settings.overdue_factor > 0 and runs and len(runs) >= settings.overdue_min_runs:
        typical = p95(runs)
        limit = settings.overdue_factor * typical
        limits.append(
            (limit, f"limit {_fmt(limit)} = {settings.overdue_factor:g}x p95 {_fmt(typical)}")
        )
    return min(limits, default=None)


def _streak(
    event: Event, names: dict[str, NameHistory], *, target: str, now: datetime
) -> list[Event]:
    """The event with its streak, plus a `recovered` event; updates `names` in place."""
    outcome = _outcome(event)
    name = event.job.name
    if outcome is None or not name:
        return [event]
    before = names.get(name, NameHistory(name=name))
    if outcome == FAILURE:
        after = dataclasses.replace(before, failures=before.failures + 1, last_outcome=FAILURE)
        names[name] = after
        return [dataclasses.replace(event, streak=after.failures)]
    runs = before.durations_s
    if (duration := _duration_s(event.job)) is not None:
        runs = (*runs, duration)[-HISTORY_RUNS:]
    names[name] = dataclasses.replace(before, durations_s=runs, failures=0, last_outcome=SUCCESS)
    if before.last_outcome != FAILURE:
        return [event]
    return [event, _recovered(event, before.failures, target=target, now=now)]


def _outcome(event: Event) -> str | None:
    """`success`/`failure` for an event that ends a run (a vanished job's outcome is unknown)."""
    if event.kind not in (EventKind.TRANSITION, EventKind.APPEARED) or event.to_state is None:
        return None
    if event.to_state is JobState.SUCCESS:
        return SUCCESS
    return FAILURE if event.to_state.is_failure else None


def _recovered(event: Event, failures: int, *, target: str, now: datetime) -> Event:
    job = event.job
    noun = "failure" if failures == 1 else "failures"
    return Event(
        event_id=event_id_for(
            target, job.id, EventKind.RECOVERED, event.from_state, event.to_state, job.create_time
        ),
        kind=EventKind.RECOVERED,
        target=target,
        job=job,
        from_state=event.from_state,
        to_state=event.to_state,
        observed_at=now,
        streak=failures,
        detail=f"succeeded after {failures} consecutive {noun}",
    )


def _still_marked(
    snapshot: Snapshot, marks: Mapping[tuple[str, str], RuleMark]
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """Marks whose job is still in the state they were fired in, and the rest (to clear)."""
    kept: set[tuple[str, str]] = set()
    cleared: set[tuple[str, str]] = set()
    for key, mark in marks.items():
        job = snapshot.get(mark.job_id)
        if job is not None and job.state_since == mark.anchor and _watched(mark.rule, job.state):
            kept.add(key)
        else:
            cleared.add(key)
    return kept, cleared


def _watched(rule: str, state: JobState) -> bool:
    """True when `state` is one that `rule` can fire in."""
    if rule == STUCK:
        return state in (JobState.STARTING, JobState.RECOVERING)
    return rule == OVERDUE and state is JobState.RUNNING


def _fire(
    job: Job, history: NameHistory | None, settings: RulesSettings, *, target: str, now: datetime
) -> Event | None:
    """The rule event `job` deserves now, ignoring whether it already fired."""
    if job.state in (JobState.STARTING, JobState.RECOVERING):
        limit = (
            settings.stuck_starting_after
            if job.state is JobState.STARTING
            else settings.stuck_recovering_after
        )
        if limit <= 0 or job.state_since is None:
            return None
        elapsed = (now - job.state_since).total_seconds()
        if elapsed <= limit:
            return None
        detail = f"in {job.state.value} for {_fmt(elapsed)} (limit {_fmt(limit)})"
        return _rule_event(EventKind.STUCK, job, detail, target=target, now=now)
    if job.state is not JobState.RUNNING:
        return None
    started = job.create_time or job.state_since
    found = overdue_limit(job, history, settings)
    if started is None or found is None:
        return None
    age = (now - started).total_seconds()
    limit, how = found
    if age <= limit:
        return None
    detail = f"running for {_fmt(age)} ({how})"
    return _rule_event(EventKind.OVERDUE, job, detail, target=target, now=now)


def _rule_event(kind: EventKind, job: Job, detail: str, *, target: str, now: datetime) -> Event:
    return Event(
        event_id=event_id_for(target, job.id, kind, job.state, job.state, job.state_since),
        kind=kind,
        target=target,
        job=job,
        from_state=job.state,
        to_state=job.state,
        observed_at=now,
        detail=detail,
    )


def _duration_s(job: Job) -> float | None:
    """How long a finished run took: the API's duration, else state_since - create_time."""
    if job.duration_ms is not None and job.duration_ms > 0:
        return job.duration_ms / 1000
    if job.state_since is not None and job.create_time is not None:
        seconds = (job.state_since - job.create_time).total_seconds()
        return seconds if seconds > 0 else None
    return None


def _fmt(seconds: float) -> str:
    return format_duration(float(max(0, round(seconds))))


def _order(job: Job) -> tuple[float, str]:
    created = job.create_time.timestamp() if job.create_time else 0.0
    return (created, job.id)
