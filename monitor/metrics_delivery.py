"""Why deliveries fail, as a metric: one counter by sink and failure kind.

`DeliveryMetrics` registers on the registry `Metrics` owns and is reached as
`metrics.delivery`. Outcomes per row (delivered, retry, failed, throttled) are in
`monitor.metrics_outbox`; this counts failed attempts by what went wrong.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from monitor.models import SINK_FAILURE_KINDS


class DeliveryMetrics:
    """Failed delivery attempts by sink and kind, on the monitor's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._failures = Counter(
            "dli_monitor_delivery_failures",
            "Failed delivery attempts by sink and why: timeout, connection, tls, http_4xx,"
            " http_5xx, throttled, vendor_error (a 200 whose body says it failed), other.",
            ["sink", "reason"],
            registry=registry,
        )

    def declare_sink(self, sink: str) -> None:
        """Start every failure kind of a sink at zero."""
        for kind in SINK_FAILURE_KINDS:
            self._failures.labels(sink=sink, reason=kind)

    def observe_failure(self, sink: str, kind: str) -> None:
        """Count one failed attempt (an unknown kind counts as `other`)."""
        label = kind if kind in SINK_FAILURE_KINDS else "other"
        self._failures.labels(sink=sink, reason=label).inc()
