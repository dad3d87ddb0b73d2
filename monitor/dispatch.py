"""The dispatcher: drains the outbox into the sinks, the one place where deliveries are retried.

`Dispatcher.drain()` sends every row that is due once and records the outcome in the store:
delivered right after a 2xx (a crash before that means a re-send with the same `event_id`, i.e.
at-least-once); a retryable failure gets a next attempt after a backoff (or the sink's
`Retry-After`, if longer) until the event is older than `max_age`; a permanent failure is final at
once. The first success of a sink after a failure (or since start) brings its rows that wait out a
backoff forward: the outage is over. Sinks run concurrently; the rows of one sink go one at a time
in event order, and after a retryable failure the sink gets nothing more in that drain (it is
likely down, so there is no point in waiting out one timeout per row). Order across a failure is
therefore best effort; receivers order by `observed_at` and de-duplicate by `event_id`.

Rate budgets (`monitor.ratelimit`): each sink may have a `RateBudget`. When a sink's due rows
exceed what its budget allows now, they ALL go as one digest `Notification` instead of being
dropped or trickled out late; when the budget allows nothing now, the rows stay pending with
`next_attempt_at` at the budget's next free slot (persisted, like every send time, so a restart
does not send early). A digest's outcome applies to all its rows. A sink's `retry_after` pauses
its budget and defers its rows. Each mark carries what `dli-monitor explain` shows of the attempt
(the error's reason and kind, the digest it went in, why rows were deferred); the store keeps
it in the mark's own transaction.

What lives elsewhere: the policy, report and guarded sink call (`monitor.dispatch_policy`),
marking what each attempt came to and tracking failing sinks (`monitor.dispatch_outcomes`),
the HTTP details and status classification (`monitor.sinks`), the
outbox itself (`monitor.store`), metrics (the caller passes an `observer`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

import structlog

from monitor.dispatch_outcomes import DeliveryObserver, DeliveryOutcomes
from monitor.dispatch_policy import (
    DeliveryPolicy,
    DeliveryReport,
    Pass,
    Tally,
    attempt_send,
    row_key,
)
from monitor.models import Clock, Notification, utc_now
from monitor.ratelimit import UNLIMITED, RateBudget
from monitor.sinks.base import Sink
from monitor.store import Delivery, Store, StoreFencedOff, StoreWriteError

log = structlog.get_logger(__name__)

__all__ = ["DeliveryObserver", "DeliveryPolicy", "DeliveryReport", "Dispatcher"]

DEFAULT_POLICY = DeliveryPolicy()

SENDS_KEPT_S = 3600.0
"""The least history of send times kept in the store per sink (more if a window is longer)."""


class Dispatcher:
    """Sends due outbox rows to their sinks within their budgets and records every outcome."""

    def __init__(
        self,
        store: Store,
        sinks: Mapping[str, Sink],
        *,
        policy: DeliveryPolicy = DEFAULT_POLICY,
        clock: Clock = utc_now,
        observer: DeliveryObserver | None = None,
        budgets: Mapping[str, RateBudget] | None = None,
        rng: random.Random | None = None,
        on_failure: DeliveryObserver | None = None,
        may_send: Callable[[], bool] | None = None,
        on_write_failure: Callable[[str], None] | None = None,
    ) -> None:
        """`rng` draws the jitter of retry waits (seed it in tests); `on_failure` is told
        (sink, failure kind) for every failed attempt; `may_send` is asked right before every
        send (a replica that lost the leader lease stops with `StoreFencedOff`);
        `on_write_failure` is told every time the state file refuses a write."""
        self._on_write_failure = on_write_failure
        self._unrecorded: dict[str, set[str]] = {}
        """Event ids per sink that were delivered but whose mark the state file refused."""
        self._write_error: str | None = None
        self._may_send = may_send
        self._store = store
        self._sinks = dict(sinks)
        self._policy = policy
        self._clock = clock
        self._budgets = dict(budgets or {})
        for name in self._sinks:
            self._budgets.setdefault(name, RateBudget((), clock=clock))
        self._outcomes = DeliveryOutcomes(
            store,
            self._sinks,
            policy=policy,
            clock=clock,
            rng=rng,
            observer=observer,
            on_failure=on_failure,
        )
        self._lock = asyncio.Lock()
        """Serialises drains: the cycle's and the periodic one must never send a row twice."""
        self._restored = False
        """Whether the budgets were fed the stored send times yet (the first drain does it)."""

    async def forget(self) -> None:
        """Drop what memory holds (send times, failing and unproven sinks) once no drain runs:
        a replica that starts leading again reloads the send times from the store."""
        async with self._lock:
            self._budgets = {
                name: RateBudget(budget.windows, clock=self._clock)
                for name, budget in self._budgets.items()
            }
            self._restored = False
            self._outcomes.forget()

    async def after_clock_step(self) -> int:
        """The wall clock stepped: the retry times of waiting rows were set on the old clock,
        so every row waiting out a backoff is due now, and the budgets reload their send times.
        Returns how many rows were brought forward."""
        now = self._clock()
        released = 0
        for name in self._sinks:
            released += await self._store.release_retries(name, now)
        await self.forget()
        if released:
            log.info("retries brought forward after a clock step", rows=released)
        return released

    async def _restore(self) -> None:
        """At start (and each new term): feed each budget the send times the store remembers,
        and make due the retries waiting longer than any backoff could have set. Those times
        were written on a clock running ahead of this one (a clock stepped back across a
        restart, or another replica's): without this they would wait out the difference.
        A long `Retry-After` is cut short too; its sink answers with it again."""
        now = self._clock()
        beyond = now + timedelta(seconds=self._policy.longest_delay)
        for name, budget in self._budgets.items():
            if budget.horizon_s > 0:
                since = now - timedelta(seconds=budget.horizon_s)
                for at in await self._store.recent_sends(name, since):
                    budget.record(at)
            released = await self._store.release_retries(name, now, beyond=beyond)
            if released:
                log.info(
                    "retries set on a clock running ahead brought forward", sink=name, rows=released
                )
        self._restored = True

    async def drain(self, *, deadline: float | None = None) -> DeliveryReport:
        """Send every due row once; stop starting sends after `deadline` (a `loop.time()`).

        Concurrent calls run one after the other, so no row is ever sent by two drains at once.
        The first one feeds the rate budgets the send times stored before a restart.
        """
        async with self._lock:
            try:
                if not self._restored:
                    await self._restore()
                await self._record_unrecorded()
                report = await self._drain(deadline)
            except StoreFencedOff:
                raise  # not a full disk: this replica no longer leads
            except StoreWriteError as exc:
                self._cannot_write(exc)
                return DeliveryReport(0, 0, 0)
            if self._write_error is not None:
                self._write_error = None
                log.info("state file writable again; deliveries are recorded and sent again")
            return report

    @property
    def write_error(self) -> str | None:
        """Why the state file refused the last drain's writes (None when they worked)."""
        return self._write_error

    async def _record_unrecorded(self) -> None:
        """Record the deliveries whose marks the state file refused earlier (before any send:
        a drain that cannot record them sends nothing, so none of them is sent twice)."""
        for name in list(self._unrecorded):
            ids = sorted(self._unrecorded[name])
            await self._store.mark_delivered_many(ids, name, self._clock())
            del self._unrecorded[name]

    def _cannot_write(self, exc: StoreWriteError) -> None:
        """The state file refused a write: stop this drain, say so once, tell the caller."""
        if self._on_write_failure is not None:
            self._on_write_failure(str(exc))
        if self._write_error is None:
            log.error(
                "cannot record deliveries in the state file; sending waits until it can",
                error=str(exc),
                delivered_unrecorded=sum(len(ids) for ids in self._unrecorded.values()),
            )
        self._write_error = str(exc)

    async def _drain(self, deadline: float | None) -> DeliveryReport:
        loop = asyncio.get_running_loop()
        state = Pass(Tally(), deadline)
        while deadline is None or loop.time() < deadline:
            rows = await self._store.due(
                self._clock(), limit=self._policy.batch_size, exclude_sinks=state.resting
            )
            fresh = [row for row in rows if row_key(row) not in state.seen]
            if not fresh:
                break
            by_sink: dict[str, list[Delivery]] = {}
            for row in fresh:
                by_sink.setdefault(row.sink, []).append(row)
            before = state.progress()
            await self._serve_all(by_sink, state)
            if state.progress() == before:
                break  # nothing could be handled (deadline): do not spin
        tally = state.tally
        if tally.given_up:
            log.warning("deliveries given up", per_sink=dict(sorted(tally.given_up.items())))
        return DeliveryReport(
            tally.delivered, tally.failed, tally.retrying, tally.deferred, tally.digests
        )

    async def _serve_all(self, by_sink: Mapping[str, list[Delivery]], state: Pass) -> None:
        """One task per sink; a store error in any of them cancels the rest and is raised."""
        try:
            async with asyncio.TaskGroup() as group:
                for name, rows in by_sink.items():
                    group.create_task(self._serve(name, rows, state))
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None

    async def _serve(self, name: str, batch: list[Delivery], state: Pass) -> None:
        """One sink's turn: singles within its budget, one digest beyond it, or a deferral."""
        sink = self._sinks.get(name)
        if sink is None:
            await self._fail_removed(name, batch, state)
            return
        budget = self._budgets[name]
        allowed = budget.allowance()
        if allowed == 0:
            await self._defer(name, budget, state)
            return
        if allowed == UNLIMITED:
            await self._send_singly(sink, batch, state)
            return
        now = self._clock()
        probe = self._unseen(await self._store.due(now, limit=allowed + 1, sink=name), state)
        if len(probe) <= allowed:
            await self._send_singly(sink, probe, state)
            return
        limit = self._policy.digest_limit
        rows = self._unseen(await self._store.due(now, limit=limit, sink=name), state)
        await self._send_digest(sink, rows, state)

    @staticmethod
    def _unseen(rows: list[Delivery], state: Pass) -> list[Delivery]:
        return [row for row in rows if row_key(row) not in state.seen]

    async def _fail_removed(self, name: str, rows: list[Delivery], state: Pass) -> None:
        """Rows for a sink that is no longer configured fail at once, without a send."""
        state.seen.update(row_key(row) for row in rows)
        await self._outcomes.removed(name, rows, state.tally)

    async def _defer(self, name: str, budget: RateBudget, state: Pass) -> None:
        """Out of budget: hold every pending row of the sink until its next free slot."""
        slot = budget.next_slot()
        reason = "rate budget spent: held to its next free slot"
        now = self._clock()
        state.tally.deferred += await self._store.defer(name, slot, now=now, reason=reason)
        state.resting.add(name)
        state.deferrals += 1
        log.debug("sink out of budget", sink=name, next_slot=slot.isoformat())

    def _expired(self, state: Pass) -> bool:
        return state.deadline is not None and asyncio.get_running_loop().time() >= state.deadline

    async def _send_singly(self, sink: Sink, rows: list[Delivery], state: Pass) -> None:
        """The rows of one sink, in order, one at a time, until one fails retryably."""
        budget = self._budgets[sink.name]
        for row in rows:
            if self._expired(state):
                return
            if budget.allowance() == 0:
                await self._defer(sink.name, budget, state)
                return
            state.seen.add(row_key(row))
            if not await self._deliver(sink, [row], state):
                return

    async def _send_digest(self, sink: Sink, rows: list[Delivery], state: Pass) -> None:
        """All the rows in one notification; its outcome is every row's outcome."""
        if not rows or self._expired(state):
            return
        state.seen.update(row_key(row) for row in rows)
        state.tally.digests += 1
        log.info("sending a digest", sink=sink.name, events=len(rows))
        await self._deliver(sink, rows, state)

    async def _deliver(self, sink: Sink, rows: Sequence[Delivery], state: Pass) -> bool:
        """Send `rows` as one notification and record the outcome; False after a retryable one."""
        name = sink.name
        if self._may_send is not None and not self._may_send():
            raise StoreFencedOff("this replica no longer leads: nothing more is sent")
        await self._spend(name)
        notification = Notification(name, tuple(r.event for r in rows))
        digest = notification if notification.is_digest else None
        error = await attempt_send(sink, notification)
        if error is None:
            delivered = [r.event.event_id for r in rows]
            try:
                await self._store.mark_delivered_many(delivered, name, self._clock(), digest=digest)
            except StoreWriteError:  # sent but not recorded: remember it, never send it again
                self._unrecorded.setdefault(name, set()).update(delivered)
                raise
            await self._outcomes.delivered(name, len(rows), state.tally)
            return True
        retried = await self._outcomes.failed(name, rows, error, state.tally, digest)
        if error.retry_after:
            until = self._clock() + timedelta(seconds=error.retry_after)
            self._budgets[name].pause(until)
            wait = f"{name} asked to wait {error.retry_after:g}s: {error.reason}"
            await self._store.defer(name, until, now=self._clock(), reason=wait)
        if retried:
            state.resting.add(name)
        return not retried

    async def _spend(self, name: str) -> None:
        """Count one send against the sink's budget, in memory and in the store."""
        budget = self._budgets[name]
        if budget.horizon_s <= 0:
            return
        now = self._clock()
        budget.record(now)
        await self._store.record_send(name, now, keep_s=max(SENDS_KEPT_S, budget.horizon_s))
