"""Prometheus metrics: the `Metrics` facade over its own registry.

Everything the daemon exports is registered here: API request, page and error counters, the
poll-duration histogram, transition and notification counters, the finished-job duration
histogram, outbox depth and age, config and build info. Job state comes from collectors that
compute it at scrape time from the snapshots handed in with `Metrics.set_snapshot`
(`monitor.metrics_jobs`); ages (snapshot, oldest outbox row) are computed at scrape time too,
from the injected clock (`monitor.metrics_projects`). Labels are bounded: project and region
(on every series that names a queue, and on the API and cost series), queue, state, sink,
operation, a folded error code or reason. Job ids appear only in the per-job series, which are
capped. Never a URL or a secret.

Deliberately not here: serving the exposition (`monitor.server`), liveness (`monitor.health`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.config.metrics import MetricsSettings
from monitor.metrics_delivery import DeliveryMetrics
from monitor.metrics_jobs import (
    PROJECT_LABELS,
    JobCountCollector,
    JobSeriesCollector,
    JobSeriesLimits,
    JobView,
    duration_s,
    label,
)
from monitor.metrics_poll import PollMetrics
from monitor.metrics_projects import AgeCollector, ProjectMetrics
from monitor.models import Clock, Job, ProjectRef, utc_now

POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
"""Histogram buckets for one target's poll: a single small page up to a long paged listing."""

RUN_BUCKETS = (30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0)
"""Histogram buckets for a finished job's run time: half a minute up to a day."""

POLL_ERROR_REASONS: tuple[str, ...] = (
    "server_error",
    "client_error",
    "timeout",
    "connection",
    "tls",
    "rate_limited",
    "auth",
    "bad_response",
    "inconsistent",
    "state_write",
    "other",
)
"""The only values `dli_monitor_poll_errors_total{reason}` takes; anything else is `other`."""

NOTIFICATION_OUTCOMES: tuple[str, ...] = ("delivered", "retry", "failed", "throttled")
"""Delivery outcomes pre-initialised for every declared sink."""

TRANSPORT_ERROR_CODES = frozenset({"timeout", "connection_error"})
"""Error codes the client uses when no answer came; kept as they are."""

MAX_ERROR_CODES = 100
"""Distinct API error codes kept as labels; later new codes are counted as `other`."""

_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9]{1,9}\.[0-9]{1,6}")
OTHER_JOB_NAME = "other"
SINGLE = ProjectRef()
"""The project of a single `dli:` mapping whose endpoint names no region: what the observe
methods label by when no project is given."""
_P = PROJECT_LABELS


def _at(project: ProjectRef) -> dict[str, str]:
    """The project labels of a series."""
    return {"project": project.name, "region": project.region}


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
        self._clock = clock
        self._sinks: set[str] = set()
        self._error_codes: set[str] = set()
        self._codes_lock = threading.Lock()
        self._histogram_names = tuple(re.compile(p) for p in settings.histogram_job_names)
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
        self._api_requests = Counter(
            "dli_monitor_api_requests",
            "Requests sent to the DLI API, by project, operation and HTTP status code (or error"
            " kind).",
            [*_P, "operation", "code"],
            registry=reg,
        )
        self._api_errors = Counter(
            "dli_monitor_api_errors",
            "Failed DLI API requests by project, operation and DLI error code (other = no or odd"
            " code).",
            [*_P, "operation", "error_code"],
            registry=reg,
        )
        self._pages = Counter(
            "dli_monitor_pages_fetched",
            "Listing pages received from the DLI API, by target.",
            [*_P, "queue"],
            registry=reg,
        )
        self._poll_duration = Histogram(
            "dli_monitor_poll_duration_seconds",
            "Time to poll one target, successful or not.",
            [*_P, "queue"],
            buckets=POLL_BUCKETS,
            registry=reg,
        )
        self._poll_errors = Counter(
            "dli_monitor_poll_errors",
            "Polls of a target that failed and left its snapshot untouched, by reason.",
            [*_P, "queue", "reason"],
            registry=reg,
        )
        self._last_success = Gauge(
            "dli_monitor_last_successful_poll_timestamp_seconds",
            "Unix time of the target's last complete, successful poll (0 = never).",
            [*_P, "queue"],
            registry=reg,
        )
        self._transitions = Counter(
            "dli_batch_job_transitions",
            "Job state changes found by diffing listings (none = appeared, vanished = gone).",
            [*_P, "queue", "from_state", "to_state"],
            registry=reg,
        )
        self._run_duration = Histogram(
            "dli_batch_job_run_duration_seconds",
            "Run time of jobs that reached a terminal state, by queue and job name (or other).",
            [*_P, "queue", "job_name"],
            buckets=RUN_BUCKETS,
            registry=reg,
        )
        self._notifications = Counter(
            "dli_monitor_notifications",
            "Delivery attempts to alert sinks, by outcome (delivered, retry, failed, throttled).",
            ["sink", "outcome"],
            registry=reg,
        )
        self._outbox_pending = Gauge(
            "dli_monitor_outbox_pending",
            "Events waiting in the outbox for delivery, by sink.",
            ["sink"],
            registry=reg,
        )
        self._malformed = Counter(
            "dli_monitor_malformed_records",
            "Job records from the API that could not be parsed and were skipped.",
            [*_P, "queue"],
            registry=reg,
        )
        self._muted = Counter(
            "dli_monitor_events_muted",
            "New events that reached no sink: silenced, or routed to no sink.",
            [*_P, "queue", "reason"],
            registry=reg,
        )
        self.poll = PollMetrics(reg)
        self.delivery = DeliveryMetrics(reg)
        self.projects = ProjectMetrics(reg)
        self.projects.set_shard(0, 1)
        self._view = JobView()
        self._jobs = JobCountCollector(self._view)
        reg.register(self._jobs)
        reg.register(JobSeriesCollector(self._view, limits_from(settings), clock))
        self._ages = AgeCollector(clock)
        reg.register(self._ages)

    def observe_api_request(
        self, operation: str, code: str, *, project: ProjectRef = SINGLE
    ) -> None:
        """Count one DLI API request attempt of a project."""
        self._api_requests.labels(**_at(project), operation=operation, code=code).inc()

    def observe_api_error(
        self, operation: str, error_code: str, *, project: ProjectRef = SINGLE
    ) -> None:
        """Count one failed DLI API request by its error code (e.g. DLI.0002, APIG.0308)."""
        code = self._fold(error_code)
        self._api_errors.labels(**_at(project), operation=operation, error_code=code).inc()

    def observe_pages(self, queue: str, pages: int, *, project: ProjectRef = SINGLE) -> None:
        """Count listing pages received for a target."""
        if pages > 0:
            self._pages.labels(**_at(project), queue=queue).inc(pages)

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
        where = _at(project)
        self._poll_duration.labels(**where, queue=queue).observe(max(0.0, duration_s))
        if ok:
            moment = now if now is not None else self._clock()
            self._last_success.labels(**where, queue=queue).set(moment.timestamp())
            self._ages.polled((project.name, project.region, queue), moment)
        else:
            label = reason if reason in POLL_ERROR_REASONS else "other"
            self._poll_errors.labels(**where, queue=queue, reason=label).inc()

    def record_transition(
        self, queue: str, from_state: str, to_state: str, *, project: ProjectRef = SINGLE
    ) -> None:
        """Count one job state change on a queue."""
        self._transitions.labels(
            **_at(project), queue=queue, from_state=from_state, to_state=to_state
        ).inc()

    def observe_finished(self, job: Job, target: str = "", *, project: ProjectRef = SINGLE) -> None:
        """Add a job that reached a terminal state to the run-duration histogram."""
        if not job.state.is_terminal:
            return
        seconds = duration_s(job, self._clock())
        if seconds is None:
            return
        named = job.name and any(p.fullmatch(job.name) for p in self._histogram_names)
        name = label(job.name) if named else OTHER_JOB_NAME
        queue = job.queue or target
        self._run_duration.labels(**_at(project), queue=queue, job_name=name).observe(seconds)

    def observe_notification(self, sink: str, outcome: str) -> None:
        """Count one delivery attempt (or throttled notification) for a sink."""
        self._notifications.labels(sink=sink, outcome=outcome).inc()

    def set_outbox_pending(self, pending: Mapping[str, int]) -> None:
        """Set the outbox depth per sink; known sinks missing from `pending` go to 0."""
        self._sinks.update(pending)
        for sink in self._sinks:
            self._outbox_pending.labels(sink=sink).set(pending.get(sink, 0))

    def set_outbox(self, pending: Mapping[str, tuple[int, datetime | None]]) -> None:
        """Set depth and oldest row's creation time per sink; known sinks missing go to empty."""
        self.set_outbox_pending({sink: depth for sink, (depth, _) in pending.items()})
        for sink in self._sinks:
            depth, oldest = pending.get(sink, (0, None))
            self._ages.outbox(sink, oldest if depth > 0 else None)

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
        where = _at(project)
        self._jobs.declare_queues(queue_list, project)
        self.projects.declare(project)
        self.poll.declare_project(project)
        for queue in queue_list:
            self._poll_duration.labels(**where, queue=queue)
            self._last_success.labels(**where, queue=queue)
            self._malformed.labels(**where, queue=queue)
            self._pages.labels(**where, queue=queue)
            self.poll.declare_queue(queue, project=project)
            for reason in POLL_ERROR_REASONS:
                self._poll_errors.labels(**where, queue=queue, reason=reason)
        self.declare_sinks(sinks)

    def declare_sinks(self, sinks: Iterable[str]) -> None:
        """Create every sink's series with zero values."""
        for sink in sinks:
            for outcome in NOTIFICATION_OUTCOMES:
                self._notifications.labels(sink=sink, outcome=outcome)
            self._outbox_pending.labels(sink=sink)  # a new child starts at 0; keeps a set value
            self.delivery.declare_sink(sink)
            if sink not in self._sinks:
                self._ages.outbox(sink, None)
            self._sinks.add(sink)

    def observe_muted(self, queue: str, reason: str, *, project: ProjectRef = SINGLE) -> None:
        """Count one new event that reached no sink (`silenced` or `unrouted`)."""
        self._muted.labels(**_at(project), queue=queue, reason=reason).inc()

    def observe_malformed(
        self, queue: str, count: int = 1, *, project: ProjectRef = SINGLE
    ) -> None:
        """Count job records from a listing that could not be parsed."""
        if count > 0:
            self._malformed.labels(**_at(project), queue=queue).inc(count)

    def _fold(self, error_code: str) -> str:
        """The error code as a bounded label: known shapes kept (up to a limit), else `other`."""
        code = error_code.strip()
        if code in TRANSPORT_ERROR_CODES:
            return code
        if not _ERROR_CODE.fullmatch(code):
            return "other"
        with self._codes_lock:
            if code not in self._error_codes and len(self._error_codes) >= MAX_ERROR_CODES:
                return "other"
            self._error_codes.add(code)
        return code
