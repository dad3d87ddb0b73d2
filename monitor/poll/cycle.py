"""One monitoring cycle: observe every target, diff, commit snapshot + outbox, deliver.

`Cycle.run_once()` is the APScheduler job, what `dli-monitor once` runs, and what the tests
call directly. Two ways to observe (`poll.mode`): `full` lists every target completely, each
concurrently; `incremental` asks `IncrementalPoller` for every target at once (cost follows
activity), falling back to a full listing for a target whose newest-first order did not hold.
Each observation then goes to the `Committer` (differ, rules, one store transaction). A target
whose observation fails keeps its old snapshot and produces no event; others go on. The clock
is read once per cycle and passed down; the cycle's summary line carries its request count
and CPU time. A `Cycle` polls one DLI project (`ProjectRef`): its client, budget and targets
are that project's, its log lines, metrics and health records name it, and the store sees
its targets under the project's keys; the daemon runs one cycle per project. A commit the
store refuses because this replica no longer leads (`StoreFencedOff`) ends the cycle with that
exception once every target is done: no report, no delivery (`monitor.leadership` handles it).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog

from monitor.config.rules import RulesSettings
from monitor.diff import Baseline
from monitor.dispatch import Dispatcher
from monitor.dli.client import DliClient
from monitor.dli.errors import DliError
from monitor.health import Health
from monitor.metrics import Metrics
from monitor.models import Clock, CycleReport, Job, ProjectRef, QueueResult, utc_now
from monitor.poll.commit import Committer
from monitor.poll.full import observe_full
from monitor.poll.incremental import IncrementalPoller
from monitor.poll.listing import ListingIncomplete
from monitor.poll.observation import Observation
from monitor.poll.plan import Planner
from monitor.poll.reasons import error_code, reason
from monitor.routing import Router
from monitor.store import Store, StoreFencedOff, StoreWriteError

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
    keep_ended_s: float | None = None
    """Incremental mode: how long ended jobs stay in memory. None = full mode, keep all."""


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
        incremental: IncrementalPoller | None = None,
        planner: Planner | None = None,
        project: ProjectRef | None = None,
    ) -> None:
        """`rules` are the lifecycle rules' thresholds (None = defaults); `incremental` None
        means full mode; `planner` stretches the interval to the request budget (full mode
        takes the incremental poller's when none is given); `project` is the DLI project
        polled (default: the single form's)."""
        self._project = project or ProjectRef()
        self._client = client
        self._store = store
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._health = health
        self._options = options
        self._clock = clock
        self._incremental = incremental
        self._planner = planner or (incremental.planner if incremental is not None else None)
        keep = options.keep_ended_s if incremental is not None else None
        self._committer = Committer(
            store,
            metrics,
            router,
            baseline=options.baseline,
            rules=rules if rules is not None else RulesSettings(),
            keep_ended_s=keep,
            project=self._project,
        )
        self._failing: set[str] = set()
        self._write_failure = False
        self._cycle_write_failed = False
        self._fenced: StoreFencedOff | None = None
        """A commit refused because this replica no longer leads: the cycle ends with it."""
        self._cycle_id = ""
        """The running cycle's id (its log lines' `cycle_id`), kept with what it commits."""

    @property
    def project(self) -> ProjectRef:
        """The DLI project this cycle polls."""
        return self._project

    @property
    def effective_interval_s(self) -> float | None:
        """The interval the request budget allows (None without a planner: as configured)."""
        return None if self._planner is None else self._planner.effective_interval_s

    def forget(self) -> None:
        """Drop the snapshots, marks and failure streaks held in memory; the next cycle
        reloads them from the store (for a replica that starts leading again)."""
        self._committer.forget()
        if self._incremental is not None:
            self._incremental.forget()
        self._failing.clear()
        self._write_failure = False
        self._fenced = None

    async def run_once(self) -> CycleReport:
        """Poll every target, commit what changed, drain the outbox; never raises on API errors."""
        started = time.monotonic()
        cpu = time.process_time()
        requests = self._client.requests_sent
        now = self._clock()
        project = self._project
        self._cycle_id = uuid.uuid4().hex[:12]
        self._cycle_write_failed = False
        with structlog.contextvars.bound_contextvars(
            cycle_id=self._cycle_id, project=project.name, region=project.region
        ):
            results = await self._observe(now, started)
            if self._fenced is not None:  # no longer the leader: no report, no delivery
                fenced, self._fenced = self._fenced, None
                raise fenced
            spent = self._client.requests_sent - requests
            self._record_requests(spent)
            report = await self._deliver(results, started)
            self._health.record_cycle(
                ok=report.ok, at=now, project=project.name, region=project.region
            )
            self._metrics.projects.observe_cycle(project, ok=report.ok, at=now)
            self._log_summary(report, spent=spent, cpu=cpu)
        return report

    async def _observe(self, now: datetime, started: float) -> list[QueueResult]:
        """Observe and commit every target, in the configured mode; one result per target."""
        if self._incremental is None:
            polls = (self._poll_full(target, now, started) for target in self._options.targets)
            return list(await asyncio.gather(*polls))
        return await self._poll_incremental(self._incremental, now, started)

    def _record_requests(self, spent: int) -> None:
        """Count the cycle's requests, and let the planner stretch the interval to the budget."""
        project = self._project
        self._metrics.poll.observe_cycle(spent, project=project)
        if self._planner is not None:
            if self._incremental is None:
                self._planner.record_core(spent)
            interval = self._planner.effective_interval_s
            self._metrics.poll.set_interval(interval, project=project)

    async def _deliver(self, results: list[QueueResult], started: float) -> CycleReport:
        """Drain the outbox within the delivery budget; the cycle's report, with what is left."""
        loop = asyncio.get_running_loop()
        delivery = await self._dispatcher.drain(
            deadline=loop.time() + self._options.delivery_budget_s
        )
        self._write_ok()
        outbox = await self._store.outbox_summary()
        self._metrics.set_outbox(outbox)
        return CycleReport(
            results=tuple(results),
            delivered=delivery.delivered,
            failed=delivery.failed,
            pending=sum(count for count, _oldest in outbox.values()),
            duration_s=time.monotonic() - started,
        )

    def _log_summary(self, report: CycleReport, *, spent: int, cpu: float) -> None:
        """The cycle's one summary line (`cpu` is the process time when it started)."""
        results = report.results
        log.info(
            "cycle completed",
            mode="full" if self._incremental is None else "incremental",
            targets_ok=sum(r.ok for r in results),
            targets_failed=sum(not r.ok for r in results),
            jobs=sum(r.jobs for r in results),
            events=report.events,
            delivered=report.delivered,
            delivery_failed=report.failed,
            pending=report.pending,
            requests=spent,
            costs=self._incremental.costs if self._incremental is not None else None,
            cpu_s=round(time.process_time() - cpu, 4),
            duration_s=round(report.duration_s, 3),
        )

    async def snapshot(self, target: str) -> dict[str, Job] | None:
        """What memory holds of a target as of its last successful poll (None before the first)."""
        return await self._committer.snapshot(target, self._clock())

    async def _poll_full(self, target: str, now: datetime, started: float) -> QueueResult:
        """List one target completely and commit it; failures leave its snapshot as it was."""
        with structlog.contextvars.bound_contextvars(target=target):
            try:
                observation = await observe_full(
                    self._client,
                    target,
                    await self._committer.snapshot(target, now),
                    await self._committer.mark(target),
                    page_size=self._options.page_size,
                    attempts=self._options.listing_attempts,
                    concurrency=self._options.confirm_concurrency,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return self._failed(target, started, exc)
            return await self._commit(target, observation, now, started)

    async def _poll_incremental(
        self, poller: IncrementalPoller, now: datetime, started: float
    ) -> list[QueueResult]:
        """Observe every target at once, then commit each (or list it in full on a fallback)."""
        targets = self._options.targets
        tracked = {target: await self._committer.snapshot(target, now) for target in targets}
        marks = {target: await self._committer.mark(target) for target in targets}
        try:
            observed = await poller.observe(tracked, marks, now=now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return [self._failed(target, started, exc) for target in targets]
        results: list[QueueResult] = []
        for target in targets:
            outcome = observed.get(target)
            if isinstance(outcome, Observation) and outcome.fallback:
                self._metrics.poll.observe_fallback(outcome.fallback, project=self._project)
                log.warning(
                    "listing order not honoured; listing in full",
                    target=target,
                    detail=outcome.detail,
                )
                results.append(await self._poll_full(target, now, started))
            elif isinstance(outcome, Observation):
                with structlog.contextvars.bound_contextvars(target=target):
                    results.append(await self._commit(target, outcome, now, started))
            else:
                error = outcome or ListingIncomplete("target was not observed")
                results.append(self._failed(target, started, error))
        return results

    async def _commit(
        self, target: str, observation: Observation, now: datetime, started: float
    ) -> QueueResult:
        """Commit one observation; a bug or a disk error fails this target, not the others."""
        try:
            result = await self._committer.commit(target, observation, now, cycle_id=self._cycle_id)
        except StoreFencedOff as exc:
            self._fenced = exc
            return QueueResult(target=self._project.key(target), ok=False, error=str(exc))
        except StoreWriteError as exc:
            self._write_failed(exc)
            return self._failed(target, started, exc)
        except Exception as exc:
            log.exception("commit failed unexpectedly")
            return self._failed(target, started, exc)
        elapsed = time.monotonic() - started
        self._metrics.observe_poll(target, elapsed, ok=True, now=now, project=self._project)
        if target in self._failing:
            self._failing.discard(target)
            log.info("target recovered", target=target)
        return result

    def _write_ok(self) -> None:
        """After a cycle in which every write worked: the state file is writable again (one
        small commit that fits is not enough to say so while others still fail)."""
        if self._dispatcher.write_error is not None:
            self._cycle_write_failed = True
        if self._write_failure and not self._cycle_write_failed:
            self._write_failure = False
            self._health.record_write(error=None)
            log.info("state file writable again; snapshots advance again")

    def _write_failed(self, exc: StoreWriteError) -> None:
        """Say loudly, once per streak, that nothing can be committed; /healthz fails too."""
        self._cycle_write_failed = True
        self._metrics.poll.observe_write_failure()
        self._health.record_write(error=str(exc))
        if not self._write_failure:
            self._write_failure = True
            log.error(
                "cannot write the state file; snapshot not advanced, changes wait until it can",
                error=str(exc),
            )

    def _failed(self, target: str, started: float, exc: BaseException) -> QueueResult:
        expected = isinstance(exc, DliError | ListingIncomplete | StoreWriteError)
        project = self._project
        if isinstance(exc, DliError):
            self._metrics.observe_api_error(exc.operation, error_code(exc), project=project)
        label = reason(exc) if isinstance(exc, Exception) and expected else "other"
        error = str(exc) if expected else f"{type(exc).__name__}: {exc}"
        if not expected and isinstance(exc, Exception) and target not in self._failing:
            log.error("poll failed unexpectedly", target=target, exc_info=exc)
        elapsed = time.monotonic() - started
        self._metrics.observe_poll(target, elapsed, ok=False, reason=label, project=project)
        if target not in self._failing:
            self._failing.add(target)
            log.warning(
                "poll failed; snapshot kept, no events", target=target, reason=label, error=error
            )
        else:
            log.debug("poll still failing", target=target, reason=label, error=error)
        return QueueResult(target=project.key(target), ok=False, error=error, reason=label)
