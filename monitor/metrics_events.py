"""What the diff found, as metrics: job state changes, run times of jobs that ended, muted events.

`EventMetrics` registers on the registry `Metrics` owns and is fed through
`Metrics.record_transition`, `Metrics.observe_finished` and `Metrics.observe_muted`. The
run-duration histogram names a job only when `histogram_job_names` picks its name; every other
job counts as `job_name="other"`, so job names cannot grow the series without bound.

Deliberately not here: the job counts and per-job series rendered at scrape time
(`monitor.metrics_jobs`), whether the events reached their sinks (`monitor.metrics_outbox`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

from monitor.metrics_jobs import PROJECT_LABELS, duration_s, label
from monitor.models import Clock, Job, ProjectRef

RUN_BUCKETS = (30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0)
"""Histogram buckets for a finished job's run time: half a minute up to a day."""

OTHER_JOB_NAME = "other"


class EventMetrics:
    """Transitions, finished jobs' run times and muted events, on the monitor's registry."""

    def __init__(
        self,
        registry: CollectorRegistry,
        histogram_names: Sequence[re.Pattern[str]],
        clock: Clock,
    ) -> None:
        """`histogram_names`: the job names with their own run-duration series; `clock` gives
        the run time of an ended job DLI reports no duration for."""
        self._histogram_names = tuple(histogram_names)
        self._clock = clock
        self._transitions = Counter(
            "dli_batch_job_transitions",
            "Job state changes found by diffing listings (none = appeared, vanished = gone).",
            [*PROJECT_LABELS, "queue", "from_state", "to_state"],
            registry=registry,
        )
        self._run_duration = Histogram(
            "dli_batch_job_run_duration_seconds",
            "Run time of jobs that reached a terminal state, by queue and job name (or other).",
            [*PROJECT_LABELS, "queue", "job_name"],
            buckets=RUN_BUCKETS,
            registry=registry,
        )
        self._muted = Counter(
            "dli_monitor_events_muted",
            "New events that reached no sink: silenced, or routed to no sink.",
            [*PROJECT_LABELS, "queue", "reason"],
            registry=registry,
        )

    def record_transition(
        self, queue: str, from_state: str, to_state: str, *, project: ProjectRef
    ) -> None:
        """Count one job state change on a queue."""
        self._transitions.labels(project.name, project.region, queue, from_state, to_state).inc()

    def observe_finished(self, job: Job, target: str, *, project: ProjectRef) -> None:
        """Add a job that reached a terminal state to the run-duration histogram."""
        if not job.state.is_terminal:
            return
        seconds = duration_s(job, self._clock())
        if seconds is None:
            return
        named = job.name and any(p.fullmatch(job.name) for p in self._histogram_names)
        name = label(job.name) if named else OTHER_JOB_NAME
        queue = job.queue or target
        self._run_duration.labels(project.name, project.region, queue, name).observe(seconds)

    def observe_muted(self, queue: str, reason: str, *, project: ProjectRef) -> None:
        """Count one new event that reached no sink (`silenced` or `unrouted`)."""
        self._muted.labels(project.name, project.region, queue, reason).inc()
