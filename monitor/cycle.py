"""One monitoring cycle: poll every target, diff, commit snapshot + outbox, deliver.

`Cycle.run_once()` is the APScheduler job, what `dli-monitor once` runs, and what the tests
call directly. Per target: poller → differ → lifecycle rules → store (snapshot, events and rule
state in one transaction); then the dispatcher drains the outbox. A target whose listing fails
keeps its old snapshot and produces no event; other targets go on. The clock is read once per
cycle and passed down.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog

from monitor.config.rules import RulesSettings
from monitor.diff import Baseline, diff, find_missing
from monitor.dispatch import Dispatcher
from monitor.dli.client import DliClient
from monitor.dli.errors import (
    DliAuthError,
    DliBadResponse,
    DliError,
    DliRateLimited,
    DliServerError,
    DliTransportError,
)
from monitor.health import Health
from monitor.metrics import Metrics
from monitor.models import Clock, CycleReport, Event, EventKind, Job, QueueResult, utc_now
from monitor.poller import Listing, ListingIncomplete, confirm_missing, fetch_listing
from monitor.routing import Router
from monitor.rules import evaluate
from monitor.store import Store

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CycleOptions:
    """How the cycle polls: the knobs that come from `poll:` and `dli:` in the config."""

    targets: tuple[str, ...]
    page_size: int = 100
    listing_attempts: int = 3
    confirm_concurrency: int = 4
    baseline: Baseline = Baseline.SILENT
    delivery_budget_s: float = 30.0


class Cycle:
    """Polls every target once and delivers what it found; keeps the snapshots in memory."""

    def __init__(
        self,
        *,
        client: DliClient,
        store: Store,
        dispatcher: Dispatcher,
        metrics: Metrics,
        health: Health,
        router: Router,
        options: CycleOptions,
        clock: Clock = utc_now,
        rules: RulesSettings | None = None,
    ) -> None:
        """`rules` are the lifecycle rules' thresholds; None = their defaults."""
        self._client = client
        self._store = store
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._health = health
        self._router = router
        self._options = options
        self._clock = clock
        self._rules = rules if rules is not None else RulesSettings()
        self._snapshots: dict[str, dict[str, Job] | None] = {}
        self._failing: set[str] = set()
        self._unknown_logged: set[str] = set()

    async def run_once(self) -> CycleReport:
        """Poll every target, commit what changed, drain the outbox; never raises on API errors."""
        started = time.monotonic()
        now = self._clock()
        with structlog.contextvars.bound_contextvars(cycle_id=uuid.uuid4().hex[:12]):
            results = [await self._poll_target(target) for target in self._options.targets]
            loop = asyncio.get_running_loop()
            delivery = await self._dispatcher.drain(
                deadline=loop.time() + self._options.delivery_budget_s
            )
            outbox = self._store.outbox_summary()
            self._metrics.set_outbox(outbox)
            pending = {sink: count for sink, (count, _oldest) in outbox.items()}
            report = CycleReport(
                results=tuple(results),
                delivered=delivery.delivered,
                failed=delivery.failed,
                pending=sum(pending.values()),
                duration_s=time.monotonic() - started,
            )
            self._health.record_cycle(ok=report.ok, at=now)
            log.info(
                "cycle completed",
                targets_ok=sum(r.ok for r in results),
                targets_failed=sum(not r.ok for r in results),
                jobs=sum(r.jobs for r in results),
                events=report.events,
                delivered=report.delivered,
                delivery_failed=report.failed,
                pending=report.pending,
                duration_s=round(report.duration_s, 3),
            )
        return report

    def snapshot(self, target: str) -> dict[str, Job] | None:
        """The snapshot of a target as of its last successful poll (None before the first)."""
        return self._load(target)

    async def _poll_target(self, target: str) -> QueueResult:
        """Poll one target; every failure is caught, counted, and leaves the snapshot as it was."""
        started = time.monotonic()
        now = self._clock()
        with structlog.contextvars.bound_contextvars(target=target):
            try:
                result = await self._poll(target, now)
            except asyncio.CancelledError:
                raise
            except (DliError, ListingIncomplete) as exc:
                if isinstance(exc, DliError):
                    self._metrics.observe_api_error(exc.operation, _error_code(exc))
                return self._failed(target, started, _reason(exc), str(exc))
            except Exception as exc:  # a bug or a disk error must not stop other targets
                log.exception("poll failed unexpectedly")
                return self._failed(target, started, "other", f"{type(exc).__name__}: {exc}")
            self._metrics.observe_poll(target, time.monotonic() - started, ok=True, now=now)
            if target in self._failing:
                self._failing.discard(target)
                log.info("target recovered")
            return result

    async def _poll(self, target: str, now: datetime) -> QueueResult:
        listing = await self._list(target)
        self._metrics.observe_pages(target, listing.pages)
        self._note_listing(target, listing)
        previous = self._load(target)
        missing = find_missing(previous, listing.jobs)
        confirmed = await confirm_missing(
            self._client, missing, concurrency=self._options.confirm_concurrency
        )
        result = diff(
            previous,
            listing.jobs,
            target=target,
            now=now,
            confirmed=confirmed,
            baseline=self._options.baseline,
        )
        events, history = result.events, None
        if previous is not None:  # the baseline stays silent, rules included
            memory = self._store.load_rule_memory(target)
            outcome = evaluate(
                result.snapshot, events, memory, target=target, now=now, settings=self._rules
            )
            events, history = outcome.events, outcome.update
        routing = self._router.for_commit(now)
        inserted = self._store.commit_poll(
            target,
            upserts=result.upserts,
            removals=result.removals,
            events=events,
            now=now,
            routing=routing,
            history=history,
        )
        self._snapshots[target] = result.snapshot
        self._metrics.set_snapshot(target, result.snapshot.values())
        for event in inserted:
            self._count(event)
        for event, silence in routing.silenced:
            self._metrics.observe_muted(event.queue, "silenced")
            log.info("event silenced", job_name=event.job.name, silence=silence.id)
        for event in routing.unrouted:
            self._metrics.observe_muted(event.queue, "unrouted")
        if previous is None:
            log.info("baseline recorded", jobs=len(result.snapshot))
        return QueueResult(
            target=target,
            ok=True,
            jobs=len(result.snapshot),
            events=len(inserted),
            baseline=previous is None,
        )

    async def _list(self, target: str) -> Listing:
        """A complete listing, retried a few times when the list shifts under us."""
        attempts = max(1, self._options.listing_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return await fetch_listing(
                    self._client, target=target, page_size=self._options.page_size
                )
            except ListingIncomplete as exc:
                if attempt == attempts:
                    raise
                log.info("listing inconsistent; listing again", attempt=attempt, reason=str(exc))
        raise AssertionError("unreachable")

    def _load(self, target: str) -> dict[str, Job] | None:
        if target not in self._snapshots:
            state = self._store.load_target(target)
            self._snapshots[target] = dict(state.jobs) if state is not None else None
        return self._snapshots[target]

    def _note_listing(self, target: str, listing: Listing) -> None:
        """Count and log (once per raw value) what the API sent that we could not use."""
        if listing.malformed:
            self._metrics.observe_malformed(target, listing.malformed)
            log.warning("malformed job records skipped", count=listing.malformed)
        for raw in sorted(listing.unknown_states - self._unknown_logged):
            self._unknown_logged.add(raw)
            log.warning("unknown job state; treated as unknown", raw_state=raw)

    def _count(self, event: Event) -> None:
        if event.kind.is_rule:  # not a state change: no transition, no finished job
            return
        if event.to_state is not None and event.to_state.is_terminal:
            self._metrics.observe_finished(event.job, event.target)
        from_state = event.from_state.value if event.from_state else "none"
        to_state = event.to_state.value if event.to_state else "vanished"
        if event.kind is EventKind.APPEARED:
            from_state = "none"
        self._metrics.record_transition(event.queue, from_state, to_state)

    def _failed(self, target: str, started: float, reason: str, error: str) -> QueueResult:
        self._metrics.observe_poll(target, time.monotonic() - started, ok=False, reason=reason)
        if target not in self._failing:
            self._failing.add(target)
            log.warning("poll failed; snapshot kept, no events", reason=reason, error=error)
        else:
            log.debug("poll still failing", reason=reason, error=error)
        return QueueResult(target=target, ok=False, error=error)


def _error_code(exc: DliError) -> str:
    """The API's error code, or what stands for it when the failure had none."""
    if exc.error_code:
        return exc.error_code
    if isinstance(exc, DliTransportError):
        return "timeout"
    return f"HTTP {exc.status}" if exc.status else "other"


def _reason(exc: Exception) -> str:
    """A short, bounded label for the poll error metric."""
    if isinstance(exc, ListingIncomplete):
        return "inconsistent"
    if isinstance(exc, DliAuthError):
        return "auth"
    if isinstance(exc, DliRateLimited):
        return "rate_limited"
    if isinstance(exc, DliServerError):
        return "server_error"
    if isinstance(exc, DliTransportError):
        return "timeout"
    if isinstance(exc, DliBadResponse):
        return "bad_response"
    return "other"
