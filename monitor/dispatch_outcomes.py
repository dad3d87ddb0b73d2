"""What each delivery attempt came to: the outbox marks, the retry times, and which sinks fail.

`DeliveryOutcomes` is the `Dispatcher`'s record keeper (nothing else uses it). After a send it
counts the rows in the drain's tally and tells the observer; after a failure it marks each row
retry (at the policy's backoff, or the sink's `Retry-After` if longer) or failed (a permanent
error, or an event older than `max_age`), and logs a sink's healthy → failing once and its
recovery once. It remembers which sinks are failing, and which have not delivered since start,
so that their first success brings their waiting retries forward: the outage is over.

What does not live here: what is sent when (budgets, digests, deadlines, fencing: the
`Dispatcher` in `monitor.dispatch`), recording a delivery's mark (the `Dispatcher`, which keeps
the marks a full disk refused), the policy's numbers (`monitor.dispatch_policy`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

import structlog

from monitor.dispatch_policy import DeliveryPolicy, Tally
from monitor.models import Clock, Notification
from monitor.sinks.base import SinkError
from monitor.store import Delivery, Store

log = structlog.get_logger(__name__)

DeliveryObserver = Callable[[str, str], None]
"""Called as (sink, outcome) for every row attempted; "delivered", "retry" or "failed"."""

SINK_REMOVED = "sink removed from config"


class DeliveryOutcomes:
    """Records each attempt's outcome in the store and the tally, and tracks failing sinks."""

    def __init__(
        self,
        store: Store,
        sinks: Iterable[str],
        *,
        policy: DeliveryPolicy,
        clock: Clock,
        rng: random.Random | None = None,
        observer: DeliveryObserver | None = None,
        on_failure: DeliveryObserver | None = None,
    ) -> None:
        """`rng` draws the jitter of retry waits; `observer` is told (sink, outcome) per row,
        `on_failure` (sink, failure kind) per failed attempt."""
        self._store = store
        self._sinks = frozenset(sinks)
        self._policy = policy
        self._clock = clock
        self._random = rng or random.Random()
        self._observer = observer
        self._on_failure = on_failure
        self._failing: dict[str, str] = {}
        """Sinks whose last attempt failed, with the reason; for once-per-change logging."""
        self._unproven = set(self._sinks)
        """Sinks not yet seen to deliver since start: a first success may end an outage that
        began before a restart."""

    def forget(self) -> None:
        """Drop what memory holds of failing and unproven sinks (see `Dispatcher.forget`)."""
        self._failing.clear()
        self._unproven = set(self._sinks)

    async def delivered(self, name: str, rows: int, tally: Tally) -> None:
        """`rows` rows reached the sink (their marks are recorded): bring its waiting retries
        forward if this ends a failure, and count them."""
        await self._bring_forward(name)
        for _ in range(rows):
            self._settle(tally, name, "delivered")

    async def failed(
        self,
        name: str,
        rows: Sequence[Delivery],
        error: SinkError,
        tally: Tally,
        digest: Notification | None = None,
    ) -> bool:
        """The attempt to send `rows` failed: note it, and mark each row retry or failed (too
        old, or permanent); True when any will retry.

        The store records each row's attempt with the error's reason and kind (and `digest`,
        the digest message the rows went in)."""
        self._note_failure(name, error)
        now = self._clock()
        kind = error.kind
        if not error.retryable:
            ids = [r.event.event_id for r in rows]
            await self._store.mark_failed_many(
                ids, name, reason=error.reason, now=now, kind=kind, digest=digest
            )
            for _ in rows:
                self._settle(tally, name, "failed")
            return False
        retries: list[tuple[str, datetime]] = []
        for row in rows:
            if (now - row.created_at).total_seconds() >= self._policy.max_age_s:
                reason = f"gave up after {row.attempts + 1} attempts: {error.reason}"
                await self._store.mark_failed(
                    row.event.event_id, name, reason=reason, now=now, kind=kind, digest=digest
                )
                self._settle(tally, name, "failed")
                continue
            wait = self._policy.delay(row.attempts + 1, self._random.random())
            delay = max(wait, error.retry_after or 0.0)
            retries.append((row.event.event_id, now + timedelta(seconds=delay)))
            self._settle(tally, name, "retry")
        await self._store.mark_retry_many(
            retries, name, reason=error.reason, now=now, kind=kind, digest=digest
        )
        log.debug("delivery will be retried", sink=name, rows=len(retries))
        return bool(retries)

    async def removed(self, name: str, rows: Sequence[Delivery], tally: Tally) -> None:
        """Rows for a sink that is no longer configured fail at once, without a send."""
        for row in rows:
            await self._store.mark_failed(
                row.event.event_id, name, reason=SINK_REMOVED, now=self._clock(), attempted=False
            )
            self._count_failed(tally, name)

    async def _bring_forward(self, name: str) -> None:
        """After a sink's first success since a failure (or since start), its rows waiting out
        a retry backoff are due at once: the outage is over, so they need not wait for it."""
        if name not in self._failing and name not in self._unproven:
            return
        self._unproven.discard(name)
        released = await self._store.release_retries(name, self._clock())
        if released:
            log.info("retries brought forward", sink=name, rows=released)

    def _settle(self, tally: Tally, name: str, outcome: str) -> None:
        """Count one row's outcome, tell the observer, and log a recovery once."""
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

    def _count_failed(self, tally: Tally, name: str) -> None:
        tally.failed += 1
        tally.given_up[name] = tally.given_up.get(name, 0) + 1

    def _note_failure(self, name: str, error: SinkError) -> None:
        """Count the failure by kind; log healthy → failing once, later ones at debug level."""
        if self._on_failure is not None:
            self._on_failure(name, error.kind)
        fields = {"sink": name, "kind": error.kind, "reason": error.reason}
        if name in self._failing:
            log.debug("sink still failing", **fields)
        else:
            log.warning("sink failing", **fields)
        self._failing[name] = error.reason
