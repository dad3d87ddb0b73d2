"""Job metrics computed at scrape time from the latest snapshots, the kube-state-metrics way.

`JobView` keeps each target's latest complete listing (and the project it belongs to). Two
collectors read it on every scrape: `JobCountCollector` renders
`dli_batch_jobs{project,region,queue,state}` (every DLI state of every known queue, 0 when
empty), and `JobSeriesCollector` renders the per-job series (a state set, an info gauge,
the created timestamp and the duration) for active jobs and for ended jobs during a TTL, capped
and filtered by job name. Because nothing is stored per series, an ended job's series vanish
once its TTL has passed, with no bookkeeping.

Deliberately not here: counters and histograms fed by the cycle (`monitor.metrics`).
"""

from __future__ import annotations

import re
import threading
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from monitor.models import DLI_STATES, Clock, Job, ProjectRef

MAX_LABEL = 200
"""Longest label value taken from a job's fields, in characters."""

PROJECT_LABELS = ("project", "region")
"""The labels that name a DLI project; every series that names a queue carries them first."""
QueueKey = tuple[str, str, str]
"""(project, region, queue): what a queue-level series is labelled by."""
JOB_LABELS = (*PROJECT_LABELS, "queue", "job_id", "job_name")
INFO_LABELS = (*JOB_LABELS, "owner", "sc_type", "app_id")
OMITTED_REASONS = ("limit", "name_filter")
"""Why a job that qualifies for per-job series has none: the cap, or the name allow/deny lists."""


def label(text: str) -> str:
    """A job field as a bounded label value."""
    return text[:MAX_LABEL]


class JobView:
    """The latest complete listing of every target, safe to read from the scrape thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._targets: dict[str, dict[str, Job]] = {}
        self._history: dict[str, dict[tuple[str, str], int]] = {}
        self._projects: dict[str, ProjectRef] = {}

    def replace(
        self,
        target: str,
        jobs: Iterable[Job],
        history: Mapping[tuple[str, str], int] | None = None,
        project: ProjectRef | None = None,
    ) -> None:
        """Replace the target's listing; what the old listing held is forgotten.

        `history` counts, per (queue, state), the target's ended jobs that are not in `jobs`
        (incremental polling keeps only recent ones in memory); they count in
        `dli_batch_jobs` but get no per-job series. `target` is the project's store key of the
        target (unique across projects); `project` names the project (default: the single one).
        """
        listing = {job.id: job for job in jobs}
        with self._lock:
            self._targets.pop(target, None)
            self._targets[target] = listing  # re-inserted last: the freshest view wins on overlap
            self._history[target] = dict(history or {})
            self._projects[target] = project or ProjectRef()

    def history(self) -> Tally[tuple[str, str, str, str]]:
        """Ended jobs per (project, region, queue, state) only the counts know of, all targets."""
        with self._lock:
            parts = [(self._projects[t], part) for t, part in self._history.items()]
        total: Tally[tuple[str, str, str, str]] = Tally()
        for project, part in parts:
            for (queue, state), count in part.items():
                total[(project.name, project.region, queue, state)] += count
        return total

    def jobs(self) -> list[tuple[QueueKey, Job]]:
        """Every job once per project, as ((project, region, its queue or else its target), the
        newest sighting)."""
        with self._lock:
            targets = [(self._projects[t], t, listing) for t, listing in self._targets.items()]
        latest: dict[tuple[str, str], tuple[QueueKey, Job]] = {}
        for project, target, listing in targets:  # overlapping targets count a job once
            for job_id, job in listing.items():
                where = (project.name, project.region, job.queue or target)
                latest[(project.name, job_id)] = (where, job)
        return list(latest.values())


class JobCountCollector:
    """Renders `dli_batch_jobs{project,region,queue,state}` from a `JobView`, zero-filled for
    known queues."""

    NAME = "dli_batch_jobs"

    def __init__(self, view: JobView) -> None:
        self._view = view
        self._lock = threading.Lock()
        self._queues: frozenset[QueueKey] = frozenset()

    def declare_queues(self, queues: Iterable[str], project: ProjectRef | None = None) -> None:
        """Add queues of a project that always export a zero for every DLI state."""
        ref = project or ProjectRef()
        with self._lock:
            self._queues = self._queues | {(ref.name, ref.region, queue) for queue in queues}

    def counts(self) -> dict[tuple[str, str, str, str], int]:
        """Jobs per (project, region, queue, state), every DLI state zero-filled for every
        known queue."""
        tally = Tally((*where, job.state.value) for where, job in self._view.jobs())
        tally.update(self._view.history())
        with self._lock:
            queues = self._queues | {(p, r, q) for p, r, q, _ in tally}
        for project, region, queue in queues:
            for state in DLI_STATES:
                tally.setdefault((project, region, queue, state.value), 0)
        return dict(tally)

    def describe(self) -> Iterator[Metric]:
        """The metric this collector produces, without samples (for registry bookkeeping)."""
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        """The current counts as one gauge family."""
        family = self._family()
        for labels, count in sorted(self.counts().items()):
            family.add_metric(list(labels), count)
        yield family

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            self.NAME,
            "DLI batch jobs in the latest complete listing, by project, the job's queue, and"
            " state.",
            labels=(*PROJECT_LABELS, "queue", "state"),
        )


@dataclass(frozen=True, slots=True)
class JobSeriesLimits:
    """Which jobs get per-job series: TTL after they end, a cap, and name allow/deny regexes."""

    ttl_s: float = 3600.0
    max_jobs: int = 2000
    allow: tuple[re.Pattern[str], ...] = ()
    deny: tuple[re.Pattern[str], ...] = ()

    def wants(self, name: str) -> bool:
        """True when the name passes the allow list (empty = all) and no deny pattern."""
        if self.allow and not any(p.fullmatch(name) for p in self.allow):
            return False
        return not any(p.fullmatch(name) for p in self.deny)


def ended_at(job: Job) -> datetime | None:
    """When a terminal job ended, as best we know: when we saw it reach that state."""
    return job.state_since if job.state_since is not None else job.update_time


def duration_s(job: Job, now: datetime) -> float | None:
    """How long the job ran (so far): DLI's own `duration`, else from its creation time."""
    if job.duration_ms is not None:
        return job.duration_ms / 1000
    if job.create_time is None:
        return None
    end = ended_at(job) if job.state.is_terminal else now
    if end is None:
        return None
    return max(0.0, (end - job.create_time).total_seconds())


class JobSeriesCollector:
    """Renders the per-job series from a `JobView` at scrape time (see the module docstring)."""

    def __init__(self, view: JobView, limits: JobSeriesLimits, clock: Clock) -> None:
        self._view = view
        self._limits = limits
        self._clock = clock

    def select(self, now: datetime) -> tuple[list[tuple[QueueKey, Job]], dict[str, int]]:
        """The jobs that get series (active first, then newest first) and how many were left out."""
        live = [(queue, job) for queue, job in self._view.jobs() if self._is_live(job, now)]
        wanted = [(queue, job) for queue, job in live if self._limits.wants(job.name)]
        wanted.sort(key=_priority)
        kept = wanted[: self._limits.max_jobs]
        omitted = {"limit": len(wanted) - len(kept), "name_filter": len(live) - len(wanted)}
        return kept, omitted

    def describe(self) -> Iterator[Metric]:
        """The metrics this collector produces, without samples (for registry bookkeeping)."""
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        """The per-job families for the jobs selected at this moment, and the omitted counts."""
        now = self._clock()
        kept, omitted = self.select(now)
        state, info, created, duration, left_out = self._families()
        for (project, region, queue), job in kept:
            ids = [project, region, label(queue), label(job.id), label(job.name)]
            states = [s.value for s in DLI_STATES]
            if job.state.value not in states:
                states.append(job.state.value)
            for value in states:
                state.add_metric([*ids, value], 1.0 if value == job.state.value else 0.0)
            extra = [label(job.owner), label(job.sc_type), label(job.app_id)]
            info.add_metric([*ids, *extra], 1.0)
            if job.create_time is not None:
                created.add_metric(ids, job.create_time.timestamp())
            seconds = duration_s(job, now)
            if seconds is not None:
                duration.add_metric(ids, seconds)
        for reason in OMITTED_REASONS:
            left_out.add_metric([reason], omitted[reason])
        yield from (state, info, created, duration, left_out)

    def _is_live(self, job: Job, now: datetime) -> bool:
        """Active, or ended no longer than the TTL ago (an unknown end time counts as expired)."""
        if not job.state.is_terminal:
            return True
        end = ended_at(job)
        return end is not None and (now - end).total_seconds() <= self._limits.ttl_s

    @staticmethod
    def _families() -> Sequence[GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "dli_batch_job_state",
                "State set of a DLI batch job: 1 for its current state, 0 for the others.",
                labels=(*JOB_LABELS, "state"),
            ),
            GaugeMetricFamily(
                "dli_batch_job_info",
                "Always 1; static properties of a DLI batch job as labels.",
                labels=INFO_LABELS,
            ),
            GaugeMetricFamily(
                "dli_batch_job_created_timestamp_seconds",
                "Unix time the DLI batch job was created.",
                labels=JOB_LABELS,
            ),
            GaugeMetricFamily(
                "dli_batch_job_duration_seconds",
                "How long the DLI batch job has run, or ran if it ended.",
                labels=JOB_LABELS,
            ),
            GaugeMetricFamily(
                "dli_monitor_job_series_omitted",
                "Jobs due per-job series that have none right now, by reason (limit, name_filter).",
                labels=("reason",),
            ),
        )


def _priority(item: tuple[QueueKey, Job]) -> tuple[bool, float, str]:
    """Sort key: active jobs before ended ones, then newest created first, then by id."""
    job = item[1]
    created = job.create_time.timestamp() if job.create_time is not None else float("-inf")
    return (job.state.is_terminal, -created, job.id)
