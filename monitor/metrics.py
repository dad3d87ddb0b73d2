"""Prometheus metrics: the `Metrics` facade over its own registry.

`Metrics` builds the registry and every series on it, and is the one object the rest of the
daemon is handed. It holds the process-wide series itself (build info, config load) and gives
each group of series to its own module, all on the same registry:

- the DLI API's answers: requests by status, errors by folded code (`monitor.metrics_api`);
- each target's poll health: duration, last success, failures, pages, malformed records
  (`monitor.metrics_targets`);
- what the diff found: transitions, finished jobs' run time, muted events
  (`monitor.metrics_events`);
- the outbox per sink: attempt outcomes, depth, oldest row (`monitor.metrics_outbox`);
- reached as attributes: the cost of polling (`metrics.poll`, `monitor.metrics_poll`), delivery
  failures by kind (`metrics.delivery`, `monitor.metrics_delivery`), project health and the shard
  (`metrics.projects`, `monitor.metrics_projects`).

Job state comes from collectors that compute it at scrape time from the snapshots handed in with
`Metrics.set_snapshot` (`monitor.metrics_jobs`); ages (snapshot, oldest outbox row) are computed
at scrape time too, from the injected clock (`monitor.metrics_projects`). Labels are bounded:
project and region (on every series that names a queue, and on the API and cost series), queue,
state, sink, operation, a folded error code or reason. Job ids appear only in the per-job series,
which are capped. Never a URL or a secret.

Deliberately not here: serving the exposition (`monitor.server`), liveness (`monitor.health`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge

from monitor.config.metrics import MetricsSettings
from monitor.metrics_api import MAX_ERROR_CODES, ApiMetrics
from monitor.metrics_delivery import DeliveryMetrics
from monitor.metrics_events import EventMetrics
from monitor.metrics_jobs import JobCountCollector, JobSeriesCollector, JobSeriesLimits, JobView
from monitor.metrics_outbox import OutboxMetrics
from monitor.metrics_poll import PollMetrics
from monitor.metrics_projects import AgeCollector, ProjectMetrics
from monitor.metrics_targets import TargetMetrics
from monitor.models import Clock, Job, ProjectRef, utc_now

__all__ = ["MAX_ERROR_CODES", "SINGLE", "Metrics", "limits_from"]

SINGLE = ProjectRef()
"""The project of a single `dli:` mapping whose endpoint names no region: what the observe
methods label by when no project is given."""


def limits_from(settings: MetricsSettings) -> JobSeriesLimits:
    """The per-job series limits a `MetricsSettings` describes, regexes compiled."""
    return JobSeriesLimits(
        ttl_s=settings.job_series_ttl,
        max_jobs=settings.max_job_series,
        allow=tuple(re.compile(p) for p in settings.job_name_allow),
        deny=tuple(re.compile(p) for p in settings.job_name_deny),
    )


class Metrics:
    """Every metric the monitor exports, on its own registry so tests and processes don't mix."""

    def __init__(
        self,
        *,
        version: str,
        registry: CollectorRegistry | None = None,
        settings: MetricsSettings | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        settings = settings if settings is not None else MetricsSettings()
        histogram_names = tuple(re.compile(p) for p in settings.histogram_job_names)
        reg = self.registry
        self._build_info = Gauge(
            "dli_monitor_build_info",
            "Always 1; the monitor's version as a label.",
            ["version"],
            registry=reg,
        )
        self._build_info.labels(version=version).set(1)
        self._config_loaded = Gauge(
            "dli_monitor_config_load_success",
            "1 when the last configuration load succeeded, 0 when it failed.",
            registry=reg,
        )
        self._config_loaded.set(1)  # a Metrics is only built from a configuration that loaded
        self._ages = AgeCollector(clock)
        self._api = ApiMetrics(reg)
        self._targets = TargetMetrics(reg, self._ages, clock)
        self._events = EventMetrics(reg, histogram_names, clock)
        self._outbox = OutboxMetrics(reg, self._ages)
        self.poll = PollMetrics(reg)
        self.delivery = DeliveryMetrics(reg)
        self.projects = ProjectMetrics(reg)
        self.projects.set_shard(0, 1)
        self._view = JobView()
        self._jobs = JobCountCollector(self._view)
        reg.register(self._jobs)
        reg.register(JobSeriesCollector(self._view, limits_from(settings), clock))
        reg.register(self._ages)

    def observe_api_request(
        self, operation: str, code: str, *, project: ProjectRef = SINGLE
    ) -> None:
        """Count one DLI API request attempt of a project."""
        self._api.observe_request(operation, code, project=project)

    def observe_api_error(
        self, operation: str, error_code: str, *, project: ProjectRef = SINGLE
    ) -> None:
        """Count one failed DLI API request by its error code (e.g. DLI.0002, APIG.0308)."""
        self._api.observe_error(operation, error_code, project=project)

    def observe_pages(self, queue: str, pages: int, *, project: ProjectRef = SINGLE) -> None:
        """Count listing pages received for a target."""
        self._targets.observe_pages(queue, pages, project=project)

    def observe_poll(
        self,
        queue: str,
        duration_s: float,
        *,
        ok: bool,
        reason: str = "",
        now: datetime | None = None,
        project: ProjectRef = SINGLE,
    ) -> None:
        """Record one poll of a target: its duration, and either its success time or its error."""
        self._targets.observe_poll(
            queue, duration_s, ok=ok, reason=reason, now=now, project=project
        )

    def observe_malformed(
        self, queue: str, count: int = 1, *, project: ProjectRef = SINGLE
    ) -> None:
        """Count job records from a listing that could not be parsed."""
        self._targets.observe_malformed(queue, count, project=project)

    def record_transition(
        self, queue: str, from_state: str, to_state: str, *, project: ProjectRef = SINGLE
    ) -> None:
        """Count one job state change on a queue."""
        self._events.record_transition(queue, from_state, to_state, project=project)

    def observe_finished(self, job: Job, target: str = "", *, project: ProjectRef = SINGLE) -> None:
        """Add a job that reached a terminal state to the run-duration histogram."""
        self._events.observe_finished(job, target, project=project)

    def observe_muted(self, queue: str, reason: str, *, project: ProjectRef = SINGLE) -> None:
        """Count one new event that reached no sink (`silenced` or `unrouted`)."""
        self._events.observe_muted(queue, reason, project=project)

    def observe_notification(self, sink: str, outcome: str) -> None:
        """Count one delivery attempt (or throttled notification) for a sink."""
        self._outbox.observe_notification(sink, outcome)

    def set_outbox_pending(self, pending: Mapping[str, int]) -> None:
        """Set the outbox depth per sink; known sinks missing from `pending` go to 0."""
        self._outbox.set_pending(pending)

    def set_outbox(self, pending: Mapping[str, tuple[int, datetime | None]]) -> None:
        """Set depth and oldest row's creation time per sink; known sinks missing go to empty."""
        self._outbox.set_pending_and_oldest(pending)

    def set_snapshot(
        self,
        target: str,
        jobs: Iterable[Job],
        history: Mapping[tuple[str, str], int] | None = None,
        *,
        project: ProjectRef = SINGLE,
    ) -> None:
        """Replace what the job collectors report for one target (its store key; `history`:
        ended jobs per (queue, state) known only by count)."""
        self._view.replace(target, jobs, history, project)

    def job_counts(self) -> dict[tuple[str, str, str, str], int]:
        """Jobs per (project, region, queue, state) as `dli_batch_jobs` reports them now."""
        return self._jobs.counts()

    def set_config_loaded(self, ok: bool) -> None:
        """Record whether the last configuration load succeeded."""
        self._config_loaded.set(1 if ok else 0)

    def declare(
        self, *, queues: Iterable[str], sinks: Iterable[str], project: ProjectRef = SINGLE
    ) -> None:
        """Create the known label sets with zero values, so every series exists from the start
        (call once per project; sinks may be given with any one of them)."""
        queue_list = list(queues)
        self._jobs.declare_queues(queue_list, project)
        self.projects.declare(project)
        self.poll.declare_project(project)
        for queue in queue_list:
            self._targets.declare_queue(queue, project=project)
            self.poll.declare_queue(queue, project=project)
        self.declare_sinks(sinks)

    def declare_sinks(self, sinks: Iterable[str]) -> None:
        """Create every sink's series with zero values."""
        for sink in sinks:
            self._outbox.declare_sink(sink)
            self.delivery.declare_sink(sink)
