"""The cost side of polling as metrics: requests per cycle, the effective interval, fallbacks
and what reconciliation found, each by project (and region): quotas are per project.

`PollMetrics` registers on the registry `Metrics` owns and is reached as `metrics.poll`.
Deliberately not here: per-target poll health (`monitor.metrics_targets`) and API
request and error counts (`monitor.metrics_api`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.metrics_jobs import PROJECT_LABELS
from monitor.models import ProjectRef

REQUEST_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

FALLBACK_REASONS = ("order",)
"""Why an incremental cycle listed a target in full: the newest-first order did not hold."""


class PollMetrics:
    """What polling costs and how the plan adapts, on the monitor's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Histogram(
            "dli_monitor_cycle_api_requests",
            "DLI API requests made by one poll cycle of a project (retries included).",
            PROJECT_LABELS,
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self._interval = Gauge(
            "dli_monitor_effective_poll_interval_seconds",
            "The poll interval in force: the configured one, or longer when the request"
            " budget cannot carry a cycle per configured interval (per project).",
            PROJECT_LABELS,
            registry=registry,
        )
        self._fallbacks = Counter(
            "dli_monitor_poll_fallbacks",
            "Incremental cycles that had to list a target in full, by reason.",
            [*PROJECT_LABELS, "reason"],
            registry=registry,
        )
        self._write_failures = Counter(
            "dli_monitor_state_write_failures",
            "Commits the state file refused (disk full, read-only, I/O error): the snapshot did"
            " not advance and the changes wait for the next cycle that can write.",
            registry=registry,
        )
        self._discrepancies = Counter(
            "dli_monitor_reconcile_discrepancies",
            "Changes the reconciliation walk found that incremental polling had not seen.",
            [*PROJECT_LABELS, "queue"],
            registry=registry,
        )

    def observe_write_failure(self) -> None:
        """Count one commit the state file refused."""
        self._write_failures.inc()

    def declare_project(self, project: ProjectRef) -> None:
        """Start the project's request histogram and fallback counts at zero."""
        self._requests.labels(project.name, project.region)
        for reason in FALLBACK_REASONS:
            self._fallbacks.labels(project.name, project.region, reason)

    def declare_queue(self, queue: str, *, project: ProjectRef | None = None) -> None:
        """Start the queue's discrepancy count at zero, so the series exists from the start."""
        ref = project or ProjectRef()
        self._discrepancies.labels(ref.name, ref.region, queue)

    def observe_cycle(self, requests: int, *, project: ProjectRef | None = None) -> None:
        """Record the requests one cycle of a project made."""
        ref = project or ProjectRef()
        self._requests.labels(ref.name, ref.region).observe(requests)

    def set_interval(self, seconds: float, *, project: ProjectRef | None = None) -> None:
        """Publish a project's effective poll interval."""
        ref = project or ProjectRef()
        self._interval.labels(ref.name, ref.region).set(seconds)

    def observe_fallback(self, reason: str, *, project: ProjectRef | None = None) -> None:
        """Count one full listing forced on an incremental cycle."""
        ref = project or ProjectRef()
        self._fallbacks.labels(ref.name, ref.region, reason).inc()

    def observe_discrepancy(self, queue: str, *, project: ProjectRef | None = None) -> None:
        """Count one change found only by reconciliation."""
        ref = project or ProjectRef()
        self._discrepancies.labels(ref.name, ref.region, queue).inc()
