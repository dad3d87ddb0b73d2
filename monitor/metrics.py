"""Prometheus metrics: the `Metrics` facade over its own registry, and the job-state collector.

Everything the daemon exports lives here: API request and poll counters, the poll-duration
histogram, transition and notification counters, outbox depth, build info, and
`dli_batch_jobs{queue,state}`, which a custom collector computes at scrape time from the
snapshots handed in with `Metrics.set_snapshot`. Labels are bounded: queue, state, sink,
operation, status code, a short reason. Never a job id, never a URL or a secret.

Deliberately not here: serving the exposition (`monitor.server`), liveness (`monitor.health`).
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from monitor.models import DLI_STATES, Job, utc_now

POLL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
"""Histogram buckets for one target's poll: a single small page up to a long paged listing."""

POLL_ERROR_REASONS: tuple[str, ...] = (
    "server_error",
    "timeout",
    "rate_limited",
    "auth",
    "bad_response",
    "inconsistent",
    "other",
)
"""The only values `dli_monitor_poll_errors_total{reason}` takes; anything else is `other`."""

NOTIFICATION_OUTCOMES: tuple[str, ...] = ("delivered", "retry", "failed")
"""Delivery outcomes pre-initialised for every declared sink."""

JOBS_METRIC = "dli_batch_jobs"


class JobStateCollector:
    """Computes `dli_batch_jobs{queue,state}` at scrape time from the latest snapshots."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, tuple[str, str]]] = {}
        self._queues: frozenset[str] = frozenset()

    def declare_queues(self, queues: Iterable[str]) -> None:
        """Add queues that always export a zero for every DLI state, even without jobs."""
        with self._lock:
            self._queues = self._queues | frozenset(queues)

    def replace(self, target: str, jobs: Iterable[Job]) -> None:
        """Replace the target's view; what the old view counted is forgotten."""
        view = {job.id: (job.queue or target, job.state.value) for job in jobs}
        with self._lock:
            self._jobs.pop(target, None)
            self._jobs[target] = view  # re-inserted last: the freshest view wins on overlap

    def counts(self) -> dict[tuple[str, str], int]:
        """Jobs per (queue, state), every DLI state zero-filled for every known queue."""
        with self._lock:
            views = list(self._jobs.values())
            declared = self._queues
        latest: dict[str, tuple[str, str]] = {}
        for view in views:  # a job listed by two overlapping targets is counted once
            latest.update(view)
        tally = Tally(latest.values())
        queues = declared | {queue for queue, _ in tally}
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

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            JOBS_METRIC,
            "DLI batch jobs in the latest complete listing, by the job's queue and state.",
            labels=("queue", "state"),
        )


class Metrics:
    """Every metric the monitor exports, on its own registry so tests and processes don't mix."""

    def __init__(self, *, version: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._sinks: set[str] = set()
        reg = self.registry
        self._build_info = Gauge(
            "dli_monitor_build_info",
            "Always 1; the monitor's version as a label.",
            ["version"],
            registry=reg,
        )
        self._build_info.labels(version=version).set(1)
        self._api_requests = Counter(
            "dli_monitor_api_requests",
            "Requests sent to the DLI API, by operation and HTTP status code (or error kind).",
            ["operation", "code"],
            registry=reg,
        )
        self._poll_duration = Histogram(
            "dli_monitor_poll_duration_seconds",
            "Time to poll one target, successful or not.",
            ["queue"],
            buckets=POLL_BUCKETS,
            registry=reg,
        )
        self._poll_errors = Counter(
            "dli_monitor_poll_errors",
            "Polls of a target that failed and left its snapshot untouched, by reason.",
            ["queue", "reason"],
            registry=reg,
        )
        self._last_success = Gauge(
            "dli_monitor_last_successful_poll_timestamp_seconds",
            "Unix time of the target's last complete, successful poll (0 = never).",
            ["queue"],
            registry=reg,
        )
        self._transitions = Counter(
            "dli_batch_job_transitions",
            "Job state changes found by diffing listings (none = appeared, vanished = gone).",
            ["queue", "from_state", "to_state"],
            registry=reg,
        )
        self._notifications = Counter(
            "dli_monitor_notifications",
            "Delivery attempts to alert sinks, by outcome (delivered, retry, failed).",
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
            ["queue"],
            registry=reg,
        )
        self._jobs = JobStateCollector()
        reg.register(self._jobs)

    def observe_api_request(self, operation: str, code: str) -> None:
        """Count one DLI API request attempt."""
        self._api_requests.labels(operation=operation, code=code).inc()

    def observe_poll(
        self,
        queue: str,
        duration_s: float,
        *,
        ok: bool,
        reason: str = "",
        now: datetime | None = None,
    ) -> None:
        """Record one poll of a target: its duration, and either its success time or its error."""
        self._poll_duration.labels(queue=queue).observe(max(0.0, duration_s))
        if ok:
            moment = now if now is not None else utc_now()
            self._last_success.labels(queue=queue).set(moment.timestamp())
        else:
            label = reason if reason in POLL_ERROR_REASONS else "other"
            self._poll_errors.labels(queue=queue, reason=label).inc()

    def record_transition(self, queue: str, from_state: str, to_state: str) -> None:
        """Count one job state change on a queue."""
        self._transitions.labels(queue=queue, from_state=from_state, to_state=to_state).inc()

    def observe_notification(self, sink: str, outcome: str) -> None:
        """Count one delivery attempt to a sink."""
        self._notifications.labels(sink=sink, outcome=outcome).inc()

    def set_outbox_pending(self, pending: Mapping[str, int]) -> None:
        """Set the outbox depth per sink; known sinks missing from `pending` go to 0."""
        self._sinks.update(pending)
        for sink in self._sinks:
            self._outbox_pending.labels(sink=sink).set(pending.get(sink, 0))

    def set_snapshot(self, target: str, jobs: Iterable[Job]) -> None:
        """Replace what `dli_batch_jobs` reports for one target with this complete listing."""
        self._jobs.replace(target, jobs)

    def declare(self, *, queues: Iterable[str], sinks: Iterable[str]) -> None:
        """Create the known label sets with zero values, so every series exists from the start."""
        queue_list = list(queues)
        self._jobs.declare_queues(queue_list)
        for queue in queue_list:
            self._poll_duration.labels(queue=queue)
            self._last_success.labels(queue=queue)
            self._malformed.labels(queue=queue)
            for reason in POLL_ERROR_REASONS:
                self._poll_errors.labels(queue=queue, reason=reason)
        for sink in sinks:
            for outcome in NOTIFICATION_OUTCOMES:
                self._notifications.labels(sink=sink, outcome=outcome)
            self._outbox_pending.labels(sink=sink)  # a new child starts at 0; keeps a set value
            self._sinks.add(sink)

    def observe_malformed(self, queue: str, count: int = 1) -> None:
        """Count job records from a listing that could not be parsed."""
        if count > 0:
            self._malformed.labels(queue=queue).inc(count)
