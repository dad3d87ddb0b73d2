"""How each poll target fares, as metrics: poll time, last success, failures, pages, bad records.

`TargetMetrics` registers on the registry `Metrics` owns and is fed through `Metrics.observe_poll`,
`Metrics.observe_pages` and `Metrics.observe_malformed`; every series carries the project, region
and queue (the target). A successful poll also tells the `AgeCollector`, which renders the
snapshot's age at scrape time.

Deliberately not here: what the listings showed (`monitor.metrics_events`, `monitor.metrics_jobs`),
the API's answers (`monitor.metrics_api`), the cost of a whole cycle (`monitor.metrics_poll`).
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.metrics_jobs import PROJECT_LABELS
from monitor.metrics_projects import AgeCollector
from monitor.models import Clock, ProjectRef

POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
"""Histogram buckets for one target's poll: a single small page up to a long paged listing."""

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

_TARGET_LABELS = (*PROJECT_LABELS, "queue")


class TargetMetrics:
    """Each target's poll health, on the monitor's registry."""

    def __init__(self, registry: CollectorRegistry, ages: AgeCollector, clock: Clock) -> None:
        """`ages` learns each successful poll; `clock` dates one when the caller gives no time."""
        self._ages = ages
        self._clock = clock
        self._pages = Counter(
            "dli_monitor_pages_fetched",
            "Listing pages received from the DLI API, by target.",
            _TARGET_LABELS,
            registry=registry,
        )
        self._duration = Histogram(
            "dli_monitor_poll_duration_seconds",
            "Time to poll one target, successful or not.",
            _TARGET_LABELS,
            buckets=POLL_BUCKETS,
            registry=registry,
        )
        self._errors = Counter(
            "dli_monitor_poll_errors",
            "Polls of a target that failed and left its snapshot untouched, by reason.",
            [*_TARGET_LABELS, "reason"],
            registry=registry,
        )
        self._last_success = Gauge(
            "dli_monitor_last_successful_poll_timestamp_seconds",
            "Unix time of the target's last complete, successful poll (0 = never).",
            _TARGET_LABELS,
            registry=registry,
        )
        self._malformed = Counter(
            "dli_monitor_malformed_records",
            "Job records from the API that could not be parsed and were skipped.",
            _TARGET_LABELS,
            registry=registry,
        )

    def declare_queue(self, queue: str, *, project: ProjectRef) -> None:
        """Start every series of the queue at zero (never polled, no error of any reason)."""
        where = (project.name, project.region, queue)
        self._duration.labels(*where)
        self._last_success.labels(*where)
        self._malformed.labels(*where)
        self._pages.labels(*where)
        for reason in POLL_ERROR_REASONS:
            self._errors.labels(*where, reason)

    def observe_poll(
        self,
        queue: str,
        duration_s: float,
        *,
        ok: bool,
        reason: str,
        now: datetime | None,
        project: ProjectRef,
    ) -> None:
        """Record one poll of a target: its duration, and either its success time or its error."""
        where = (project.name, project.region, queue)
        self._duration.labels(*where).observe(max(0.0, duration_s))
        if ok:
            moment = now if now is not None else self._clock()
            self._last_success.labels(*where).set(moment.timestamp())
            self._ages.polled(where, moment)
        else:
            label = reason if reason in POLL_ERROR_REASONS else "other"
            self._errors.labels(*where, label).inc()

    def observe_pages(self, queue: str, pages: int, *, project: ProjectRef) -> None:
        """Count listing pages received for a target."""
        if pages > 0:
            self._pages.labels(project.name, project.region, queue).inc(pages)

    def observe_malformed(self, queue: str, count: int, *, project: ProjectRef) -> None:
        """Count job records from a listing that could not be parsed."""
        if count > 0:
            self._malformed.labels(project.name, project.region, queue).inc(count)
