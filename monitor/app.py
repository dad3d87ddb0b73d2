"""The composition root: builds every part from `Settings` and runs the daemon's lifecycle.

This is the only module that knows the concrete classes. `Monitor` owns the aiohttp sessions,
the store, the sinks and dispatcher, the metrics server and the scheduler inside an
`AsyncExitStack`, and one poll pipeline per DLI project (`monitor.pipeline`: each with its own
client, budget and scheduler job), cut down to the targets this shard owns (`monitor.shard`);
`run()` waits for SIGTERM/SIGINT (the handlers only set an event) and then shuts down in a
fixed order: pause the scheduler, let the in-flight cycle finish within `shutdown_timeout`,
deliver what can still be delivered, stop the scheduler, the HTTP server, release the leader
lease, close the store, and close the session last. With `state.url` every leader-only job
(cycles, drains, alert refreshes) runs through `monitor.leadership`: a standby skips them; a
shard of several keeps its state and lease apart from the others' (`monitor.shard_state`).

What lives next to it: which jobs the scheduler runs (`monitor.daemon_jobs`) and what the HTTP
server is built from (`monitor.server_wiring`); this module decides when each starts and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from functools import partial

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor import __version__
from monitor.config import Settings
from monitor.daemon_jobs import restore_alerts, schedule_jobs
from monitor.dispatch import DeliveryPolicy, DeliveryReport, Dispatcher
from monitor.health import Health
from monitor.leadership import Leadership
from monitor.metrics import Metrics
from monitor.models import Clock, CycleReport, utc_now
from monitor.pipeline import Pipeline, Shared, build_pipeline, owned_targets
from monitor.poll.cycle import Cycle
from monitor.poll.listing import ALL_QUEUES
from monitor.routing import Router
from monitor.scheduler import ClockWatch, drain
from monitor.server import bound_port
from monitor.server_wiring import start_http_server
from monitor.shard import Shard
from monitor.shard_state import state_scope
from monitor.sinks.base import Sink
from monitor.status_sinks import SinkActivity
from monitor.store import Store, open_store
from monitor.wiring import SessionPool, build_budgets, build_sinks

log = structlog.get_logger(__name__)

RETENTION_S = 7 * 86400.0
"""Delivered and failed notifications are kept this long (for receivers' de-duplication
questions and for `/api/status`), then pruned."""


class Monitor:
    """Every long-lived part of the daemon, built from settings and torn down in order."""

    def __init__(
        self, settings: Settings, *, clock: Clock = utc_now, shard: Shard | None = None
    ) -> None:
        """`shard` is this process's place among shards (default: one shard, owning all)."""
        self.settings = settings
        self.clock = clock
        self.shard = shard or Shard(0, 1)
        self.metrics = Metrics(version=__version__, settings=settings.metrics, clock=clock)
        self.metrics.projects.set_shard(self.shard.index, self.shard.total)
        self.health = Health(stale_after_s=_stale_after(settings), clock=clock)
        self.scope = state_scope(self.shard, shared_database=settings.state.url is not None)
        """This shard's PostgreSQL schema and lease name (the defaults with one shard)."""
        self.leadership = Leadership.from_settings(
            settings.state,
            self.metrics.registry,
            self.health,
            name=self.scope.lease,
            schema=self.scope.schema,
        )
        """The leader lease with `state.url` (a standby polls and delivers nothing)."""
        self._stack = AsyncExitStack()
        self.store: Store
        self.dispatcher: Dispatcher
        self.pipelines: list[Pipeline] = []
        """One per project with targets this shard owns, in config order."""
        self.server_port: int | None = None
        self.sinks: dict[str, Sink] = {}
        self.activity = SinkActivity(clock)
        """Each sink's last delivery attempt, for the status page."""
        self._last_prune: datetime | None = None
        self._scheduler: AsyncIOScheduler | None = None

    @property
    def cycle(self) -> Cycle:
        """The first project's cycle (the only one with a single `dli:` mapping)."""
        return self.pipelines[0].cycle

    @property
    def interval_s(self) -> float:
        """The first project's poll interval in force."""
        return self.pipelines[0].interval_s if self.pipelines else self.settings.poll.interval

    @property
    def scheduler(self) -> AsyncIOScheduler | None:
        """The scheduler the projects' cycle jobs run on (None before `run` builds it)."""
        return self._scheduler

    @scheduler.setter
    def scheduler(self, scheduler: AsyncIOScheduler | None) -> None:
        self._scheduler = scheduler
        for pipeline in self.pipelines:
            pipeline.scheduler = scheduler

    async def __aenter__(self) -> Monitor:
        sessions = await self._open_sessions()
        await self._open_store()
        self.sinks = build_sinks(
            self.settings, sessions, self.clock, instance=self.leadership.holder
        )
        self.metrics.declare_sinks(self.sinks)
        self.dispatcher = self._build_dispatcher()
        self.leadership.attach(self.dispatcher.forget)
        restore = partial(restore_alerts, self.sinks, self.store, self.clock)
        await restore()  # and again when a new term starts: the previous leader fired some
        self.leadership.attach(restore)
        self._build_pipelines(self._shared(sessions))
        self.metrics.set_outbox(await self.store.outbox_summary())
        # The lease is released after the last cycle and delivery, before the store closes.
        self._stack.push_async_callback(self.leadership.stop)
        self.leadership.start()
        log.info(
            "monitor configured",
            version=__version__,
            projects=[p.summary() for p in self.pipelines],
            shard=str(self.shard),
            sinks=list(self.sinks),
            state=str(self.settings.state.location),
        )
        return self

    async def _open_sessions(self) -> SessionPool:
        """The HTTP sessions (closed last), timing out at 3x the slowest request timeout."""
        timeout = max(1.0, *(p.dli.request_timeout for p in self.settings.projects))
        return await self._stack.enter_async_context(SessionPool(timeout_s=timeout * 3))

    async def _open_store(self) -> None:
        """Open the state store, fenced by the leader lease; it closes before the sessions."""
        leadership = self.leadership
        self.store = await open_store(
            self.settings.state.location,
            password=self.settings.state.password_value(),
            fence=leadership.fence_provider,
            idle_in_transaction_timeout=leadership.idle_limit_s,
            schema=self.scope.schema,
        )
        self._stack.push_async_callback(self.store.close)

    def _build_dispatcher(self) -> Dispatcher:
        """The dispatcher over the built sinks: the delivery policy and budgets from settings,
        outcomes to the metrics and the sinks' activity, sends only while this replica leads."""
        delivery = self.settings.delivery
        return Dispatcher(
            self.store,
            self.sinks,
            policy=DeliveryPolicy(
                backoff=tuple(delivery.backoff),
                jitter=delivery.jitter,
                max_age_s=delivery.max_age,
                batch_size=delivery.batch_size,
            ),
            clock=self.clock,
            observer=self.activity.observer(self.metrics.observe_notification),
            on_failure=self.activity.failures(self.metrics.delivery.observe_failure),
            budgets=build_budgets(self.settings, self.clock),
            may_send=self.leadership.send_gate,
            on_write_failure=self._delivery_write_failed,
        )

    def _shared(self, sessions: SessionPool) -> Shared:
        """What every project's pipeline shares, with the router over the built sinks."""
        settings = self.settings
        router = Router.from_settings(
            settings.routes,
            list(self.sinks),
            default_sinks=settings.default_sinks,
            silences=self.store.active_silences,
        )
        return Shared(
            settings,
            sessions,
            self.store,
            self.dispatcher,
            self.metrics,
            self.health,
            router,
            self.clock,
        )

    def _build_pipelines(self, shared: Shared) -> None:
        """One pipeline per project with targets this shard owns; declare what they export."""
        owned: list[str] = []
        for project in self.settings.projects:
            targets = owned_targets(project, self.shard)
            owned += [project.key(target) for target in targets]
            if not targets:
                continue
            queues = [target for target in targets if target != ALL_QUEUES]
            self.metrics.declare(queues=queues, sinks=(), project=project.ref)
            self.metrics.poll.set_interval(self.settings.poll.interval, project=project.ref)
            self.health.declare(project.name, project.region)
            self.pipelines.append(build_pipeline(project, targets, shared))
        if not self.pipelines:
            self.health.idle()
        if self.shard.total > 1:
            schema = self.scope.schema
            log.info("shard owns targets", shard=str(self.shard), targets=owned, schema=schema)

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    async def start_server(self) -> None:
        """Serve /metrics, the probes, the JSON views and the status page if the config enables
        it."""
        server = self.settings.server
        if not server.enabled:
            return
        runner = await start_http_server(
            self.settings,
            store=self.store,
            metrics=self.metrics,
            health=self.health,
            leadership=self.leadership,
            pipelines=self.pipelines,
            activity=self.activity,
            shard=self.shard,
            clock=self.clock,
        )
        self._stack.push_async_callback(runner.cleanup)
        self.server_port = bound_port(runner)
        log.info("http server listening", host=server.host, port=self.server_port)

    async def run_cycle(self) -> CycleReport:
        """One cycle of every project at once, as one report (what `once` and tests run)."""
        reports = await asyncio.gather(*(self._lead_cycle(p) for p in self.pipelines))
        return CycleReport(
            results=tuple(result for report in reports for result in report.results),
            delivered=sum(report.delivered for report in reports),
            failed=sum(report.failed for report in reports),
            pending=max((report.pending for report in reports), default=0),
            duration_s=max((report.duration_s for report in reports), default=0.0),
        )

    async def _lead_cycle(self, pipeline: Pipeline) -> CycleReport:
        """The pipeline's cycle if this replica leads; on a standby, its targets unpolled."""
        report = await self.leadership.run(
            pipeline.job_id, pipeline.run_cycle, forget=pipeline.cycle.forget, cycle=True
        )
        if report is None:
            keys = (pipeline.project.key(target) for target in pipeline.targets)
            return CycleReport(self.leadership.standby_results(keys), 0, 0, 0, 0.0)
        return report

    async def deliver(self, timeout: float | None = None) -> DeliveryReport:
        """Drain the outbox once (the dispatcher serialises this with the cycle's own drain)."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        report = await self.dispatcher.drain(deadline=deadline)
        await self._prune()
        self.metrics.set_outbox(await self.store.outbox_summary())
        return report

    def _delivery_write_failed(self, error: str) -> None:
        """The outbox could not be written: count it and fail /healthz like a commit would."""
        self.metrics.poll.observe_write_failure()
        self.health.record_write(error=error)

    async def _prune(self) -> None:
        """Forget settled notifications older than `RETENTION_S`, at most once an hour."""
        now = self.clock()
        if self._last_prune is not None and (now - self._last_prune).total_seconds() < 3600:
            return
        self._last_prune = now
        removed = await self.store.prune(older_than=now - timedelta(seconds=RETENTION_S))
        if removed:
            log.info("pruned settled notifications", removed=removed)


async def run(
    settings: Settings, *, stop: asyncio.Event | None = None, shard: Shard | None = None
) -> int:
    """Run the daemon until SIGTERM/SIGINT (or `stop` is set); returns the exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        async with Monitor(settings, shard=shard) as monitor:
            await monitor.start_server()
            scheduler, jobs = schedule_jobs(
                settings,
                pipelines=monitor.pipelines,
                sinks=monitor.sinks,
                leadership=monitor.leadership,
                deliver=monitor.deliver,
            )
            monitor.scheduler = scheduler
            scheduler.start()
            step = monitor.leadership.guard("clock step", monitor.dispatcher.after_clock_step)
            clock_watch = ClockWatch(scheduler, on_step=[step])
            clock_watch.start()
            log.info("monitor started", interval_s=settings.poll.interval)
            await stop.wait()
            log.info("shutting down", timeout_s=settings.shutdown_timeout)
            await clock_watch.stop()
            started = loop.time()
            finished = await drain(scheduler, jobs, settings.shutdown_timeout)
            remaining = settings.shutdown_timeout - (loop.time() - started)
            if remaining > 0:
                report = await monitor.leadership.run(
                    "final delivery", lambda: monitor.deliver(timeout=remaining)
                )
                if report is not None:  # a standby delivers nothing
                    log.info("final delivery", delivered=report.delivered, failed=report.failed)
            log.info("monitor stopped", cycle_finished=finished)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    return 0


async def run_once(settings: Settings, *, shard: Shard | None = None) -> CycleReport:
    """One poll of every target (this shard owns) and one delivery pass: `dli-monitor once`."""
    async with Monitor(settings, shard=shard) as monitor:
        await monitor.leadership.wait_leading(timeout=2 * settings.state.lease_ttl)
        return await monitor.run_cycle()


def _stale_after(settings: Settings) -> float:
    """How old the last successful cycle may be before /healthz fails."""
    timeout = max(p.dli.request_timeout for p in settings.projects)
    return 3 * settings.poll.interval + timeout * 2 + 30
