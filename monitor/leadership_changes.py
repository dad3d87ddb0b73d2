"""What a replica exports about its leadership, and since when it leads.

`LeadershipChanges` owns `dli_monitor_leader` (1 while this replica leads, read at scrape time)
and `dli_monitor_leader_changes_total{reason}`, whose reasons are a bounded set: the lease
keeper's own change reasons mapped by `change_reason`, plus `fenced` for a loss the store
noticed first. A loss is counted once, whichever side sees it first. It also keeps when this
replica last became the leader (`leading_for_s`, for /healthz).

What does not live here: deciding who leads (`monitor.leader`), the guard of leader-only jobs
and its terms (`monitor.leadership`); the keeper logs every change itself.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

CHANGE_REASONS = ("acquired", "released", "taken_over", "renew_failed", "deadline", "fenced")
"""The `reason` label values of `dli_monitor_leader_changes_total` (a bounded set)."""

_LABELS = (("released", "released"), ("lease lost", "taken_over"), ("renew failed", "renew_failed"))


def change_reason(leading: bool, reason: str) -> str:
    """The bounded label for one of the keeper's change reasons."""
    if leading:
        return "acquired"
    return next((label for start, label in _LABELS if reason.startswith(start)), "deadline")


class LeadershipChanges:
    """The leader gauge and the changes counter (one count per loss), and the leading time."""

    def __init__(
        self, registry: CollectorRegistry, leading: Callable[[], bool], clock: Callable[[], float]
    ) -> None:
        """`leading` is read at every scrape; `clock` is monotonic seconds."""
        self._clock = clock
        self._since = clock()
        """When this replica last became the leader (or was built)."""
        self._loss_counted = True
        self.gauge = Gauge(
            "dli_monitor_leader",
            "1 while this replica holds the leader lease, polls and delivers; 0 for a standby"
            " (always 1 without state.url).",
            registry=registry,
        )
        self.gauge.set_function(lambda: 1.0 if leading() else 0.0)
        self.changes = Counter(
            "dli_monitor_leader_changes_total",
            "Changes of this replica's leadership by reason: acquired, released, taken_over,"
            " renew_failed, deadline (its renewals stopped in time, e.g. frozen), fenced (the"
            " database refused a write first).",
            ["reason"],
            registry=registry,
        )
        for reason in CHANGE_REASONS:
            self.changes.labels(reason=reason)

    def keeper_changed(self, leading: bool, reason: str) -> None:
        """The keeper's change callback: count it (once per loss) and note when it began."""
        if leading:
            self._loss_counted = False
            self._since = self._clock()
        elif self._loss_counted:
            return
        else:
            self._loss_counted = True
        self.changes.labels(reason=change_reason(leading, reason)).inc()

    def fenced_off(self) -> None:
        """The store refused a write because another replica took over: count the loss as
        `fenced`, unless it was counted already."""
        if not self._loss_counted:
            self._loss_counted = True
            self.changes.labels(reason="fenced").inc()

    @property
    def leading_for_s(self) -> float:
        """Seconds since this replica last became the leader."""
        return self._clock() - self._since
