"""The outbox as metrics, per sink: each attempt's outcome, the rows waiting and the oldest's age.

`OutboxMetrics` registers on the registry `Metrics` owns and is fed through
`Metrics.observe_notification`, `Metrics.set_outbox_pending`, `Metrics.set_outbox` and
`Metrics.declare_sinks`. It remembers every sink it has heard of, so a sink whose rows all went
out drops to zero instead of keeping its last depth; the oldest row's age goes to the
`AgeCollector`, which renders it at scrape time.

Deliberately not here: why attempts failed (`monitor.metrics_delivery`), sending and retrying
(`monitor.dispatch`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.metrics_projects import AgeCollector

NOTIFICATION_OUTCOMES: tuple[str, ...] = ("delivered", "retry", "failed", "throttled")
"""Delivery outcomes pre-initialised for every declared sink."""


class OutboxMetrics:
    """Delivery outcomes and outbox depth per sink, on the monitor's registry."""

    def __init__(self, registry: CollectorRegistry, ages: AgeCollector) -> None:
        """`ages` learns when each sink's oldest pending row was created."""
        self._ages = ages
        self._sinks: set[str] = set()
        self._notifications = Counter(
            "dli_monitor_notifications",
            "Delivery attempts to alert sinks, by outcome (delivered, retry, failed, throttled).",
            ["sink", "outcome"],
            registry=registry,
        )
        self._pending = Gauge(
            "dli_monitor_outbox_pending",
            "Events waiting in the outbox for delivery, by sink.",
            ["sink"],
            registry=registry,
        )

    def declare_sink(self, sink: str) -> None:
        """Create the sink's series with zero values (a depth already set is kept)."""
        for outcome in NOTIFICATION_OUTCOMES:
            self._notifications.labels(sink=sink, outcome=outcome)
        self._pending.labels(sink=sink)  # a new child starts at 0; keeps a set value
        if sink not in self._sinks:
            self._ages.outbox(sink, None)
        self._sinks.add(sink)

    def observe_notification(self, sink: str, outcome: str) -> None:
        """Count one delivery attempt (or throttled notification) for a sink."""
        self._notifications.labels(sink=sink, outcome=outcome).inc()

    def set_pending(self, pending: Mapping[str, int]) -> None:
        """Set the outbox depth per sink; known sinks missing from `pending` go to 0."""
        self._sinks.update(pending)
        for sink in self._sinks:
            self._pending.labels(sink=sink).set(pending.get(sink, 0))

    def set_pending_and_oldest(self, pending: Mapping[str, tuple[int, datetime | None]]) -> None:
        """Set depth and oldest row's creation time per sink; known sinks missing go to empty."""
        self.set_pending({sink: depth for sink, (depth, _) in pending.items()})
        for sink in self._sinks:
            depth, oldest = pending.get(sink, (0, None))
            self._ages.outbox(sink, oldest if depth > 0 else None)
