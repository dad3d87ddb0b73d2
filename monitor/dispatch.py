"""The dispatcher: drains the outbox into the sinks, the one place where deliveries are retried.

`Dispatcher.drain()` sends every row that is due once and records the outcome in the store:
delivered right after a 2xx (a crash before that means a re-send with the same `event_id`,
i.e. at-least-once); a retryable failure gets a next attempt after a backoff (or the sink's
`Retry-After`, if longer) until the event is older than `max_age`; a permanent failure is
final at once. Sinks run concurrently; the rows of one sink go one at a time in event order,
and after a retryable failure the sink gets nothing more in that drain (it is likely down, so
there is no point in waiting out one timeout per row). Order across a failure is therefore
best effort; receivers order by `observed_at` and de-duplicate by `event_id`.

What lives elsewhere: the HTTP details and status classification (`monitor.sinks`), the
outbox itself (`monitor.store`), metrics (the caller passes an `observer`).
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from monitor.models import Clock, utc_now
from monitor.sinks.base import Sink, SinkError, safe_text
from monitor.store import Delivery, Store

log = structlog.get_logger(__name__)

DeliveryObserver = Callable[[str, str], None]
"""Called as (sink, outcome) for every attempt; outcome is "delivered", "retry" or "failed"."""

SINK_REMOVED = "sink removed from config"


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How deliveries are retried: waits between attempts, and when to give up."""

    backoff: tuple[float, ...] = (5, 30, 120, 600)
    """Seconds before attempt n+1 after n failures; the last value repeats."""
    max_age_s: float = 86400
    """A retryable failure of an event older than this is final."""
    batch_size: int = 100
    """Rows fetched from the outbox at a time."""

    def __post_init__(self) -> None:
        if any(delay < 0 for delay in self.backoff):
            raise ValueError("backoff delays must not be negative")
        if self.max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the attempt that made `attempts` failures in a row (1-based)."""
        if not self.backoff:
            return 0.0
        return float(self.backoff[min(max(attempts, 1), len(self.backoff)) - 1])


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one drain did: rows delivered, given up, and scheduled for another attempt."""

    delivered: int
    failed: int
    retrying: int


@dataclass(slots=True)
class _Tally:
    delivered: int = 0
    failed: int = 0
    retrying: int = 0
    given_up: dict[str, int] = field(default_factory=dict)


class Dispatcher:
    """Sends due outbox rows to their sinks and records every outcome in the store."""

    def __init__(
        self,
        store: Store,
        sinks: Mapping[str, Sink],
        *,
        policy: DeliveryPolicy = DeliveryPolicy(),
        clock: Clock = utc_now,
        observer: DeliveryObserver | None = None,
    ) -> None:
        self._store = store
        self._sinks = dict(sinks)
        self._policy = policy
        self._clock = clock
        self._observer = observer
        self._failing: dict[str, str] = {}
        """Sinks whose last attempt failed, with the reason; for once-per-change logging."""
        self._lock = asyncio.Lock()
        """Serialises drains: the cycle's and the periodic one must never send a row twice."""

    async def drain(self, *, deadline: float | None = None) -> DeliveryReport:
        """Send every due row once; stop starting sends after `deadline` (a `loop.time()`).

        Concurrent calls run one after the other, so no row is ever sent by two drains at once.
        """
        async with self._lock:
            return await self._drain(deadline)

    async def _drain(self, deadline: float | None) -> DeliveryReport:
        loop = asyncio.get_running_loop()
        tally = _Tally()
        resting: set[str] = set()  # sinks that failed retryably in this drain
        seen: set[tuple[str, str]] = set()
        while deadline is None or loop.time() < deadline:
            rows = self._store.due(
                self._clock(), limit=self._policy.batch_size, exclude_sinks=resting
            )
            fresh = [row for row in rows if (row.event.event_id, row.sink) not in seen]
            if not fresh:
                break
            seen.update((row.event.event_id, row.sink) for row in fresh)
            by_sink: dict[str, list[Delivery]] = {}
            for row in fresh:
                by_sink.setdefault(row.sink, []).append(row)
            await self._send_all(by_sink, tally, resting, deadline)
        if tally.given_up:
            log.warning("deliveries given up", per_sink=dict(sorted(tally.given_up.items())))
        return DeliveryReport(tally.delivered, tally.failed, tally.retrying)

    async def _send_all(
        self,
        by_sink: Mapping[str, list[Delivery]],
        tally: _Tally,
        resting: set[str],
        deadline: float | None,
    ) -> None:
        """One task per sink; a store error in any of them cancels the rest and is raised."""
        try:
            async with asyncio.TaskGroup() as group:
                for name, rows in by_sink.items():
                    group.create_task(self._send_rows(name, rows, tally, resting, deadline))
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None

    async def _send_rows(
        self,
        name: str,
        rows: list[Delivery],
        tally: _Tally,
        resting: set[str],
        deadline: float | None,
    ) -> None:
        """The rows of one sink, in order, one at a time, until one fails retryably."""
        sink = self._sinks.get(name)
        if sink is None:
            for row in rows:
                self._store.mark_failed(
                    row.event.event_id,
                    name,
                    reason=SINK_REMOVED,
                    now=self._clock(),
                    attempted=False,
                )
                self._count_failed(tally, name)
            return
        loop = asyncio.get_running_loop()
        for row in rows:
            if deadline is not None and loop.time() >= deadline:
                return
            error = await self._attempt(sink, row)
            if error is None:
                self._store.mark_delivered(row.event.event_id, name, self._clock())
                self._settle(tally, name, "delivered")
                continue
            self._note_failure(name, error.reason)
            if self._record_failure(row, error) == "retry":
                self._settle(tally, name, "retry")
                resting.add(name)
                return
            self._settle(tally, name, "failed")

    async def _attempt(self, sink: Sink, row: Delivery) -> SinkError | None:
        """One send; any non-`SinkError` exception becomes a retryable error (and is logged)."""
        try:
            await sink.send(row.event)
        except SinkError as error:
            return error
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a sink must not stop the other sinks
            where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            log.error(
                "sink raised an unexpected error",
                sink=sink.name,
                error_type=type(exc).__name__,
                error=safe_text(str(exc)),
                where=f"{where.filename}:{where.lineno}" if where else "",
            )
            return SinkError(f"unexpected {type(exc).__name__} in sink", retryable=True)
        return None

    def _record_failure(self, row: Delivery, error: SinkError) -> str:
        """Mark the row retry or failed; returns which."""
        now = self._clock()
        event_id = row.event.event_id
        if not error.retryable:
            self._store.mark_failed(event_id, row.sink, reason=error.reason, now=now)
            return "failed"
        age = (now - row.created_at).total_seconds()
        if age >= self._policy.max_age_s:
            reason = f"gave up after {row.attempts + 1} attempts: {error.reason}"
            self._store.mark_failed(event_id, row.sink, reason=reason, now=now)
            return "failed"
        delay = max(self._policy.delay(row.attempts + 1), error.retry_after or 0.0)
        self._store.mark_retry(
            event_id, row.sink, next_attempt_at=now + timedelta(seconds=delay), reason=error.reason
        )
        log.debug("delivery will be retried", sink=row.sink, event_id=event_id, delay_s=delay)
        return "retry"

    def _settle(self, tally: _Tally, name: str, outcome: str) -> None:
        """Count one outcome, tell the observer, and log a recovery once."""
        if outcome == "delivered":
            tally.delivered += 1
            if self._failing.pop(name, None) is not None:
                log.info("sink recovered", sink=name)
        elif outcome == "retry":
            tally.retrying += 1
        else:
            self._count_failed(tally, name)
        if self._observer is not None:
            self._observer(name, outcome)

    def _count_failed(self, tally: _Tally, name: str) -> None:
        tally.failed += 1
        tally.given_up[name] = tally.given_up.get(name, 0) + 1

    def _note_failure(self, name: str, reason: str) -> None:
        """Log healthy → failing once; later failures of the same sink only at debug level."""
        if name in self._failing:
            log.debug("sink still failing", sink=name, reason=reason)
        else:
            log.warning("sink failing", sink=name, reason=reason)
        self._failing[name] = reason
