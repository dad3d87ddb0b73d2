"""Per-project and per-process series: whether each DLI project polls, ages, and the shard.

`ProjectMetrics` registers on the registry `Metrics` owns and is reached as
`metrics.projects`: `dli_monitor_project_up{project,region}` (1 when the project's last cycle
polled every target it owns), the project's last fully successful cycle, and
`dli_monitor_shard_info{shard,total_shards}`. `AgeCollector` renders ages at scrape time from
the injected clock: seconds since each queue's last successful poll, and the oldest outbox
row's age per sink.

Deliberately not here: the per-queue counters and histograms (`monitor.metrics_targets`,
`monitor.metrics_events`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from monitor.metrics_jobs import PROJECT_LABELS, QueueKey
from monitor.models import Clock, ProjectRef


class ProjectMetrics:
    """Health of each DLI project, and which shard this process is, on the monitor's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._up = Gauge(
            "dli_monitor_project_up",
            "1 when the project's last poll cycle polled every target it watches, else 0 (bad"
            " credentials, region down, a target failing).",
            PROJECT_LABELS,
            registry=registry,
        )
        self._last_success = Gauge(
            "dli_monitor_project_last_success_timestamp_seconds",
            "Unix time of the project's last cycle that polled every target (0 = never).",
            PROJECT_LABELS,
            registry=registry,
        )
        self._shard = Gauge(
            "dli_monitor_shard_info",
            "Always 1; which shard of how many this process is (0 of 1 without sharding).",
            ["shard", "total_shards"],
            registry=registry,
        )

    def declare(self, project: ProjectRef) -> None:
        """Start the project's series: down and never successful until its first cycle."""
        self._up.labels(project=project.name, region=project.region)
        self._last_success.labels(project=project.name, region=project.region)

    def observe_cycle(self, project: ProjectRef, *, ok: bool, at: datetime) -> None:
        """Record one finished cycle of the project (`ok`: every target polled)."""
        self._up.labels(project=project.name, region=project.region).set(1 if ok else 0)
        if ok:
            gauge = self._last_success.labels(project=project.name, region=project.region)
            gauge.set(at.timestamp())

    def set_shard(self, index: int, total: int) -> None:
        """Publish this process's shard."""
        self._shard.clear()
        self._shard.labels(shard=str(index), total_shards=str(total)).set(1)


class AgeCollector:
    """Renders the snapshot age per queue and the oldest outbox row's age per sink, at scrape."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._polled: dict[QueueKey, datetime] = {}
        self._oldest: dict[str, datetime | None] = {}

    def polled(self, queue: QueueKey, at: datetime) -> None:
        """Remember the (project, region, queue)'s last successful poll."""
        with self._lock:
            self._polled[queue] = at

    def outbox(self, sink: str, oldest: datetime | None) -> None:
        """Remember when the sink's oldest pending row was created (None: nothing pending)."""
        with self._lock:
            self._oldest[sink] = oldest

    def describe(self) -> Iterator[Metric]:
        """The metrics this collector produces, without samples (for registry bookkeeping)."""
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        """Both ages as of now; a queue never polled successfully has no age series yet."""
        now = self._clock()
        with self._lock:
            polled, oldest = dict(self._polled), dict(self._oldest)
        snapshot, outbox = self._families()
        for queue, at in sorted(polled.items()):
            snapshot.add_metric(list(queue), max(0.0, (now - at).total_seconds()))
        for sink, since in sorted(oldest.items()):
            age = 0.0 if since is None else max(0.0, (now - since).total_seconds())
            outbox.add_metric([sink], age)
        yield snapshot
        yield outbox

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "dli_monitor_snapshot_age_seconds",
                "Seconds since the queue's last complete, successful poll.",
                labels=(*PROJECT_LABELS, "queue"),
            ),
            GaugeMetricFamily(
                "dli_monitor_outbox_oldest_age_seconds",
                "Age of the oldest notification waiting in the outbox, by sink (0 = none).",
                labels=("sink",),
            ),
        )
