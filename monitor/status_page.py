"""What the status page (`GET /`) shows, gathered from memory and a few bounded store reads.

`gather(sources)` assembles an `Overview`: jobs per project/queue x state (the counts
`dli_batch_jobs` reports, from `Metrics.job_counts`), the newest events with each sink's
outcome (`Store.recent_events`, told the way `explain` tells them), running jobs past what is
usual for their name (the snapshots in memory against the rule memory, one read per target),
each sink's health (`SinkActivity`, fed by the dispatcher's observers), budget (its send
windows replayed over `Store.recent_sends`) and outbox depth (`Store.outbox_summary`), and
each project's poll health with its effective interval. The store is never read per job: the
cost at 10,000 jobs is two passes over the snapshots in memory.

What does not live here: the HTML (`monitor.status_html`), the routes and headers
(`monitor.server`), building the sources from the daemon's parts (`monitor.status_wiring`).
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from monitor.config.rules import RulesSettings
from monitor.explain import EventStory, event_story
from monitor.models import DLI_STATES, Clock, Job, JobState, NameHistory, ProjectRef
from monitor.models_explain import EventRecord
from monitor.rules import overdue_limit, p95
from monitor.status_sinks import SinkActivity, SinkRow, SinkSpec, SinkStore, sink_rows
from monitor.store.contract import RuleMemoryStore, TrailStore

RECENT_EVENTS = 25
"""How many of the newest events the page lists."""
LONG_RUNNERS = 20
"""How many of the jobs running longer than usual the page lists (the count says how many)."""
MIN_REFRESH_S = 5.0
"""The page never reloads itself more often than this."""


class StatusStore(TrailStore, RuleMemoryStore, SinkStore, Protocol):
    """What the status page reads (every `Store` is one)."""


@dataclass(frozen=True, slots=True)
class TargetJobs:
    """One poll target's jobs as memory holds them: its store key, project and snapshot."""

    key: str
    project: ProjectRef
    jobs: Mapping[str, Job] | None
    """None before the target's first successful poll."""


@dataclass(frozen=True, slots=True)
class ProjectPoll:
    """A project's poll interval: configured, and in force (longer when the budget says so)."""

    name: str
    configured_s: float
    effective_s: float


@dataclass(frozen=True, slots=True)
class StatusSources:
    """Everything the page reads, handed in by the composition root."""

    store: StatusStore
    clock: Clock
    rules: RulesSettings
    version: str
    probes: Callable[[], Mapping[str, object]]
    """The /healthz body (health, readiness, role, per-project poll records)."""
    job_counts: Callable[[], Mapping[tuple[str, str, str, str], int]]
    targets: Callable[[], Awaitable[Sequence[TargetJobs]]]
    polls: Callable[[], Sequence[ProjectPoll]]
    sinks: Sequence[SinkSpec]
    activity: SinkActivity


@dataclass(frozen=True, slots=True)
class CountRow:
    """Jobs of one queue of one project, per state (in `Counts.states` order)."""

    project: str
    region: str
    queue: str
    counts: tuple[int, ...]
    total: int


@dataclass(frozen=True, slots=True)
class Counts:
    """The jobs table: the states as columns, one row per project and queue."""

    states: tuple[str, ...]
    rows: tuple[CountRow, ...]
    total: int


@dataclass(frozen=True, slots=True)
class EventRow:
    """One recent event, with its job and what each sink did with it."""

    target: str
    job_id: str
    job_name: str
    queue: str
    story: EventStory


@dataclass(frozen=True, slots=True)
class LongRunner:
    """A job running longer than its name's usual run time (or its limit)."""

    target: str
    job_id: str
    name: str
    queue: str
    running_s: float
    usual_s: float | None
    """The p95 of the name's recent successful runs (None: not enough runs yet)."""
    limit_s: float | None
    limit_why: str
    """How the `overdue` rule's limit came about; empty without a limit."""

    @property
    def overdue(self) -> bool:
        """Past the `overdue` rule's limit."""
        return self.limit_s is not None and self.running_s > self.limit_s

    @property
    def threshold_s(self) -> float | None:
        """The run time past which the job counts as long: its usual or its limit, if lower."""
        return min((s for s in (self.usual_s, self.limit_s) if s is not None), default=None)


@dataclass(frozen=True, slots=True)
class PollRow:
    """One project's poll health and interval."""

    project: str
    region: str
    up: bool
    polling: bool
    last_success_at: datetime | None
    consecutive_failures: int
    configured_s: float | None
    effective_s: float | None


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything `GET /` shows, as of `at`."""

    at: datetime
    version: str
    health: Mapping[str, object]
    """The /healthz body: `healthy`, `reason`, `ready`, `role`, per-project records."""
    refresh_s: float
    counts: Counts
    polls: tuple[PollRow, ...]
    events: tuple[EventRow, ...]
    long_runners: tuple[LongRunner, ...]
    long_total: int
    """How many jobs run longer than usual (the page lists the first `LONG_RUNNERS`)."""
    sinks: tuple[SinkRow, ...]


async def gather(sources: StatusSources) -> Overview:
    """The page's data as of now (reads memory, and the store a bounded number of times)."""
    now = sources.clock()
    polls = sources.polls()
    records = await sources.store.recent_events(RECENT_EVENTS)
    long_runners, long_total = await _long_runners(sources, now)
    health = dict(sources.probes())
    return Overview(
        at=now,
        version=sources.version,
        health=health,
        refresh_s=refresh_after(polls),
        counts=counts(sources.job_counts()),
        polls=_polls(health, polls),
        events=tuple(_event_row(record, now) for record in records),
        long_runners=long_runners,
        long_total=long_total,
        sinks=await sink_rows(sources.store, sources.sinks, sources.activity, records, now),
    )


def refresh_after(polls: Sequence[ProjectPoll]) -> float:
    """Seconds between the page's own reloads: the shortest effective interval, at least 5."""
    shortest = min((p.effective_s for p in polls), default=MIN_REFRESH_S)
    return max(MIN_REFRESH_S, shortest)


def counts(tally: Mapping[tuple[str, str, str, str], int]) -> Counts:
    """The jobs table from counts per (project, region, queue, state)."""
    known = [s.value for s in DLI_STATES]
    states = tuple(known + sorted({key[3] for key in tally} - set(known)))
    column = {state: index for index, state in enumerate(states)}
    rows: dict[tuple[str, str, str], list[int]] = {}
    for (project, region, queue, state), count in tally.items():
        rows.setdefault((project, region, queue), [0] * len(states))[column[state]] += count
    table = tuple(
        CountRow(*key, tuple(values), sum(values)) for key, values in sorted(rows.items())
    )
    return Counts(states, table, sum(row.total for row in table))


def _event_row(record: EventRecord, now: datetime) -> EventRow:
    """One stored event as the page lists it."""
    event = record.event
    job = event.job
    return EventRow(
        event.target, job.id, job.name, job.queue or event.target, event_story(record, now)
    )


async def _long_runners(
    sources: StatusSources, now: datetime
) -> tuple[tuple[LongRunner, ...], int]:
    """Running jobs past their name's usual run time or limit: the worst first, and how many."""
    found: dict[tuple[str, str], LongRunner] = {}
    for target in await sources.targets():
        running = [j for j in (target.jobs or {}).values() if j.state is JobState.RUNNING]
        if not running:
            continue
        memory = await sources.store.load_rule_memory(target.key)
        limits: dict[str, tuple[float | None, float | None, str]] = {}
        for job in running:
            started = job.create_time or job.state_since  # as the `overdue` rule counts
            if started is None:
                continue
            seconds = max(0.0, (now - started).total_seconds())
            if job.name not in limits:
                limits[job.name] = _limits(job, memory.names.get(job.name), sources.rules)
            usual, limit, why = limits[job.name]
            runner = LongRunner(
                target.key, job.id, job.name, job.queue or target.key, seconds, usual, limit, why
            )
            if runner.threshold_s is not None and seconds > runner.threshold_s:
                found[(target.project.name, job.id)] = runner
    worst = heapq.nlargest(LONG_RUNNERS, found.values(), key=_overrun)
    return tuple(worst), len(found)


def _limits(
    job: Job, history: NameHistory | None, rules: RulesSettings
) -> tuple[float | None, float | None, str]:
    """(usual run time, the `overdue` limit, how the limit came about) for the job's name."""
    runs = history.durations_s if history is not None else ()
    usual = p95(runs) if runs and len(runs) >= rules.overdue_min_runs else None
    found = overdue_limit(job, history, rules)
    limit, why = found if found is not None else (None, "")
    return usual, limit, why


def _overrun(runner: LongRunner) -> tuple[bool, float]:
    """Sort key: overdue ones first, then by how many times past the usual or limit."""
    threshold = runner.threshold_s or 1.0
    return runner.overdue, runner.running_s / max(threshold, 1.0)


def _polls(health: Mapping[str, object], polls: Sequence[ProjectPoll]) -> tuple[PollRow, ...]:
    """Each project's poll record from the /healthz body, with its intervals."""
    intervals = {p.name: p for p in polls}
    projects = health.get("projects")
    rows: list[PollRow] = []
    for name, record in sorted(projects.items() if isinstance(projects, Mapping) else []):
        if not isinstance(record, Mapping):
            continue
        interval = intervals.get(str(name))
        failures = record.get("consecutive_failed_cycles")
        rows.append(
            PollRow(
                project=str(name),
                region=str(record.get("region", "")),
                up=record.get("up") is True,
                polling=record.get("polling") is True,
                last_success_at=_when(record.get("last_success_at")),
                consecutive_failures=failures if isinstance(failures, int) else 0,
                configured_s=interval.configured_s if interval is not None else None,
                effective_s=interval.effective_s if interval is not None else None,
            )
        )
    return tuple(rows)


def _when(value: object) -> datetime | None:
    """A time from the /healthz body (ISO 8601 text), or None."""
    return datetime.fromisoformat(value) if isinstance(value, str) else None
