"""Job metrics computed at scrape time from the latest snapshots, the kube-state-metrics way.

`JobView` keeps each target's latest complete listing. Two collectors read it on every scrape:
`JobCountCollector` renders `dli_batch_jobs{queue,state}` (every DLI state of every known queue,
0 when empty), and `JobSeriesCollector` renders the per-job series (a state set, an info gauge,
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

from monitor.models import DLI_STATES, Clock, Job

MAX_LABEL = 200
"""Longest label value taken from a job's fields, in characters."""

JOB_LABELS = ("queue", "job_id", "job_name")
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

    def replace(
        self,
        target: str,
        jobs: Iterable[Job],
        history: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        """Replace the target's listing; what the old listing held is forgotten.

        `history` counts, per (queue, state), the target's ended jobs that are not in `jobs`
        (incremental polling keeps only recent ones in memory); they count in
        `dli_batch_jobs` but get no per-job series.
        """
        listing = {job.id: job for job in jobs}
        with self._lock:
            self._targets.pop(target, None)
            self._targets[target] = listing  # re-inserted last: the freshest view wins on overlap
            self._history[target] = dict(history or {})

    def history(self) -> Tally[tuple[str, str]]:
        """Ended jobs per (queue, state) that only the counts know of, over every target."""
        with self._lock:
            parts = list(self._history.values())
        total: Tally[tuple[str, str]] = Tally()
        for part in parts:
            total.update(part)
        return total

    def jobs(self) -> list[tuple[str, Job]]:
        """Every job once, as (its queue, or else its target; the newest sighting)."""
        with self._lock:
            targets = list(self._targets.items())
        latest: dict[str, tuple[str, Job]] = {}
        for target, listing in targets:  # a job listed by two overlapping targets counts once
            for job_id, job in listing.items():
                latest[job_id] = (job.queue or target, job)
        return list(latest.values())


class JobCountCollector:
    """Renders `dli_batch_jobs{queue,state}` from a `JobView`, zero-filled for known queues."""

    NAME = "dli_batch_jobs"

    def __init__(self, view: JobView) -> None:
        self._view = view
        self._lock = threading.Lock()
        self._queues: frozenset[str] = frozenset()

    def declare_queues(self, queues: Iterable[str]) -> None:
        """Add queues that always export a zero for every DLI state, even without jobs."""
        with self._lock:
            self._queues = self._queues | frozenset(queues)

    def counts(self) -> dict[tuple[str, str], int]:
        """Jobs per (queue, state), every DLI state zero-filled for every known queue."""
        tally = Tally((queue, job.state.value) for queue, job in self._view.jobs())
        tally.update(self._view.history())
        with self._lock:
            queues = self._queues | {queue for queue, _ in tally}
        for queue in queues:
            for state in DLI_STATES:
                tally.setdefault((queue, state.value), 0)
        return dict(tally)

    def describe(self) -> Iterator[Metric]:
        """The metric this collector produces, without samples (for registry bookkeeping)."""
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        """The current counts as one gauge family."""
        family = self._family()
        for (queue, state), count in sorted(self.counts().items()):
            family.add_metric([queue, state], count)
        yield family

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            self.NAME,
            "DLI batch jobs in the latest complete listing, by the job's queue and state.",
            labels=("queue", "state"),
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

    def select(self, now: datetime) -> tuple[list[tuple[str, Job]], dict[str, int]]:
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
        for queue, job in kept:
            ids = [label(queue), label(job.id), label(job.name)]
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


def _priority(item: tuple[str, Job]) -> tuple[bool, float, str]:
    """Sort key: active jobs before ended ones, then newest created first, then by id."""
    job = item[1]
    created = job.create_time.timestamp() if job.create_time is not None else float("-inf")
    return (job.state.is_terminal, -created, job.id)
