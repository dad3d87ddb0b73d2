"""The composition root: builds every part from `Settings` and runs the daemon's lifecycle.

This is the only module that knows the concrete classes. `Monitor` owns the one aiohttp
`ClientSession`, the store, the metrics server and the scheduler inside an `AsyncExitStack`;
`run()` waits for SIGTERM/SIGINT (the handlers only set an event) and then shuts down in a
fixed order: pause the scheduler, let the in-flight cycle finish within `shutdown_timeout`,
deliver what can still be delivered, stop the scheduler, the HTTP server, the store, and
close the session last.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor import __version__
from monitor.config import AlertmanagerSinkSettings, ServerAuthSettings, Settings
from monitor.diff import Baseline
from monitor.dispatch import DeliveryPolicy, DeliveryReport, Dispatcher
from monitor.dli.budget import RequestBudget
from monitor.dli.client import DliClient, RetryPolicy
from monitor.health import Health
from monitor.metrics import Metrics
from monitor.models import Clock, CycleReport, utc_now
from monitor.poll.cycle import Cycle, CycleOptions
from monitor.poll.incremental import IncrementalPoller
from monitor.poll.listing import ALL_QUEUES
from monitor.poll.plan import Planner
from monitor.poll.reasons import LASTING_FAILURES
from monitor.poll.reconcile import Reconciler
from monitor.poll.units import IncrementalOptions
from monitor.redact import redact_url
from monitor.routing import Router
from monitor.scheduler import (
    CYCLE_JOB,
    TrackedJob,
    add_periodic,
    build_scheduler,
    drain,
    run_soon,
    set_interval,
)
from monitor.server import Credentials, bound_port, make_app, start_server
from monitor.sinks import (
    AlertmanagerSink,
)
from monitor.sinks.base import Sink
from monitor.store import Store, open_store
from monitor.wiring import SessionPool, build_auth, build_budgets, build_sinks

log = structlog.get_logger(__name__)

DELIVERY_INTERVAL_S = 1.0
"""How often retries that fell due between cycles are attempted: waits start near one second,
so a blip of two failed posts costs seconds. A drain with nothing due is one indexed query."""

RETENTION_S = 7 * 86400.0
"""Delivered and failed notifications are kept this long (for receivers' de-duplication
questions and for `/api/status`), then pruned."""


def targets_of(settings: Settings) -> tuple[str, ...]:
    """The poll targets: each configured queue, or `*` for the whole project."""
    if settings.queues == ALL_QUEUES:
        return (ALL_QUEUES,)
    return tuple(settings.queues)


class Monitor:
    """Every long-lived part of the daemon, built from settings and torn down in order."""

    def __init__(self, settings: Settings, *, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = Metrics(version=__version__, settings=settings.metrics, clock=clock)
        self.health = Health(stale_after_s=_stale_after(settings), clock=clock)
        self.metrics.poll.set_interval(settings.poll.interval)
        self._stack = AsyncExitStack()
        self.store: Store
        self.cycle: Cycle
        self.dispatcher: Dispatcher
        self.server_port: int | None = None
        self.sinks: dict[str, Sink] = {}
        self._last_prune: datetime | None = None
        self.interval_s = settings.poll.interval
        """The poll interval in force (longer than configured when the budget says so)."""
        self.scheduler: AsyncIOScheduler | None = None
        self._stretch_logged = False

    async def __aenter__(self) -> Monitor:
        settings = self.settings
        sessions = await self._stack.enter_async_context(
            SessionPool(timeout_s=max(settings.dli.request_timeout, 1.0) * 3)
        )
        self.store = await open_store(_state_path(settings))
        self._stack.push_async_callback(self.store.close)
        sinks = build_sinks(settings, sessions, self.clock)
        self.sinks = sinks
        self.metrics.declare(queues=_declared_queues(settings), sinks=sinks)
        self.dispatcher = Dispatcher(
            self.store,
            sinks,
            policy=DeliveryPolicy(
                backoff=tuple(settings.delivery.backoff),
                jitter=settings.delivery.jitter,
                max_age_s=settings.delivery.max_age,
                batch_size=settings.delivery.batch_size,
            ),
            clock=self.clock,
            observer=self.metrics.observe_notification,
            on_failure=self.metrics.delivery.observe_failure,
            budgets=build_budgets(settings, self.clock),
        )
        self.cycle = self._build_cycle(_dli_client(settings, sessions, self.metrics, self.clock))
        self.metrics.set_outbox(await self.store.outbox_summary())
        log.info(
            "monitor configured",
            version=__version__,
            endpoint=redact_url(str(settings.dli.endpoint)),
            targets=list(targets_of(settings)),
            sinks=list(sinks),
            state=str(_state_path(settings)),
        )
        return self

    def _build_cycle(self, client: DliClient) -> Cycle:
        """The poll cycle over `client`, with its planner, router and options from settings."""
        settings = self.settings
        planner = Planner(
            page_size=settings.dli.page_size,
            interval_s=settings.poll.interval,
            max_per_minute=settings.dli.max_requests_per_minute,
        )
        return Cycle(
            incremental=_incremental(settings, client, planner),
            planner=planner,
            client=client,
            store=self.store,
            dispatcher=self.dispatcher,
            metrics=self.metrics,
            health=self.health,
            router=Router.from_settings(
                settings.routes,
                list(self.sinks),
                default_sinks=settings.default_sinks,
                silences=self.store.active_silences,
            ),
            options=CycleOptions(
                targets=targets_of(settings),
                page_size=settings.dli.page_size,
                listing_attempts=settings.poll.listing_attempts,
                confirm_concurrency=settings.dli.max_concurrency,
                baseline=Baseline(settings.poll.baseline),
                delivery_budget_s=max(5.0, settings.poll.interval / 2),
                keep_ended_s=max(settings.metrics.job_series_ttl, 2 * settings.poll.interval),
            ),
            clock=self.clock,
            rules=settings.rules,
        )

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    async def start_server(self) -> None:
        """Serve /metrics, /healthz and /readyz if the config enables it."""
        server = self.settings.server
        if not server.enabled:
            return
        app = make_app(
            self.metrics, self.health, views=self._views, credentials=_credentials(server.auth)
        )
        runner = await start_server(app, server.host, server.port)
        self._stack.push_async_callback(runner.cleanup)
        self.server_port = bound_port(runner)
        log.info("http server listening", host=server.host, port=self.server_port)

    async def run_cycle(self) -> CycleReport:
        """One cycle; what the scheduler runs (it then follows the effective interval)."""
        report = await self.cycle.run_once()
        self._follow_budget()
        self._hurry_after(report)
        return report

    def _hurry_after(self, report: CycleReport) -> None:
        """After a failure that may pass, run the next cycle soon rather than an interval later."""
        configured = self.settings.poll
        if report.ok or configured.failure_retry <= 0 or self.scheduler is None:
            return
        if self.interval_s > configured.interval or report.failure_reasons & LASTING_FAILURES:
            return  # the budget is binding, or trying sooner cannot help
        delay = min(max(1.0, configured.failure_retry), self.interval_s)
        if delay < self.interval_s:
            run_soon(self.scheduler, CYCLE_JOB, delay)
            log.debug("next cycle brought forward after a failed poll", delay_s=delay)

    def _follow_budget(self) -> None:
        """Move the cycle's schedule to the interval the request budget allows, and say so."""
        configured = self.settings.poll.interval
        wanted = self.cycle.effective_interval_s or configured
        if wanted == self.interval_s:
            return
        if wanted > configured and not self._stretch_logged:
            self._stretch_logged = True
            log.warning(
                "poll interval stretched to fit the DLI request budget",
                configured_s=configured,
                effective_s=wanted,
                max_requests_per_minute=self.settings.dli.max_requests_per_minute,
            )
        elif wanted == configured:
            log.info("poll interval back to the configured one", interval_s=configured)
        self.interval_s = wanted
        if self.scheduler is not None:
            set_interval(self.scheduler, CYCLE_JOB, wanted)

    async def deliver(self, timeout: float | None = None) -> DeliveryReport:
        """Drain the outbox once (the dispatcher serialises this with the cycle's own drain)."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        report = await self.dispatcher.drain(deadline=deadline)
        await self._prune()
        self.metrics.set_outbox(await self.store.outbox_summary())
        return report

    async def _prune(self) -> None:
        """Forget settled notifications older than `RETENTION_S`, at most once an hour."""
        now = self.clock()
        if self._last_prune is not None and (now - self._last_prune).total_seconds() < 3600:
            return
        self._last_prune = now
        removed = await self.store.prune(older_than=now - timedelta(seconds=RETENTION_S))
        if removed:
            log.info("pruned settled notifications", removed=removed)

    async def _views(self) -> Mapping[str, Any]:
        """What `/api/status` shows: health, pending deliveries and jobs held per target."""
        targets: dict[str, int | None] = {}
        for target in targets_of(self.settings):
            jobs = await self.cycle.snapshot(target)
            targets[target] = len(jobs) if jobs is not None else None
        return {
            "version": __version__,
            "health": self.health.snapshot(),
            "outbox_pending": await self.store.pending_by_sink(),
            "targets": targets,
        }


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT (or `stop` is set); returns the exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    try:
        async with Monitor(settings) as monitor:
            await monitor.start_server()
            cycle_job = TrackedJob("poll cycle", _logged(monitor.run_cycle))
            delivery_job = TrackedJob("outbox drain", _logged(monitor.deliver))
            scheduler = build_scheduler(
                cycle=cycle_job,
                interval_s=settings.poll.interval,
                delivery=delivery_job,
                delivery_interval_s=min(DELIVERY_INTERVAL_S, settings.poll.interval),
            )
            monitor.scheduler = scheduler
            jobs = [cycle_job, delivery_job, *_alert_refreshers(monitor, scheduler)]
            scheduler.start()
            log.info("monitor started", interval_s=settings.poll.interval)
            await stop.wait()
            log.info("shutting down", timeout_s=settings.shutdown_timeout)
            started = loop.time()
            finished = await drain(scheduler, jobs, settings.shutdown_timeout)
            remaining = settings.shutdown_timeout - (loop.time() - started)
            if remaining > 0:
                report = await monitor.deliver(timeout=remaining)
                log.info("final delivery", delivered=report.delivered, failed=report.failed)
            log.info("monitor stopped", cycle_finished=finished)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    return 0


def _alert_refreshers(monitor: Monitor, scheduler: AsyncIOScheduler) -> list[TrackedJob]:
    """Re-post firing Alertmanager alerts every `repost_interval`, so none auto-resolves."""
    jobs: list[TrackedJob] = []
    for entry in monitor.settings.sinks:
        sink = monitor.sinks.get(entry.name)
        if isinstance(entry, AlertmanagerSinkSettings) and isinstance(sink, AlertmanagerSink):
            job = TrackedJob(f"alert refresh {entry.name}", _logged(sink.refresh))
            add_periodic(
                scheduler, job, job_id=f"refresh-{entry.name}", interval_s=entry.repost_interval
            )
            jobs.append(job)
    return jobs


async def run_once(settings: Settings) -> CycleReport:
    """One poll of every target and one delivery pass; what `dli-monitor once` does."""
    async with Monitor(settings) as monitor:
        return await monitor.run_cycle()


def _logged(func: Any) -> Any:
    """Wrap a job so that an unexpected exception is logged, never lost in the scheduler."""

    async def job() -> None:
        try:
            await func()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduled job failed")

    return job


def _dli_client(
    settings: Settings, sessions: SessionPool, metrics: Metrics, clock: Clock
) -> DliClient:
    """The DLI client: its endpoint's session, auth, request budget and retry policy."""
    return DliClient(
        sessions.get(settings.dli.tls, setting="dli.tls"),
        endpoint=str(settings.dli.endpoint),
        project_id=settings.dli.project_id,
        auth=build_auth(settings, sessions, clock),
        timeout_s=settings.dli.request_timeout,
        budget=RequestBudget(settings.dli.max_requests_per_minute),
        retry=RetryPolicy(
            attempts=settings.dli.retry.attempts,
            backoff=tuple(settings.dli.retry.backoff),
        ),
        observer=metrics.observe_api_request,
    )


def _incremental(
    settings: Settings, client: DliClient, planner: Planner
) -> IncrementalPoller | None:
    """The incremental poller `poll.mode` asks for (None: full listings)."""
    if settings.poll.mode != "incremental":
        return None
    page_size = settings.dli.page_size
    return IncrementalPoller(
        client,
        IncrementalOptions(
            targets=targets_of(settings),
            page_size=page_size,
            overlap_s=settings.poll.overlap,
            concurrency=settings.dli.max_concurrency,
            listing_attempts=settings.poll.listing_attempts,
        ),
        planner,
        lambda: Reconciler(full_resync_s=settings.poll.full_resync, page_size=page_size),
    )


def _credentials(auth: ServerAuthSettings | None) -> Credentials | None:
    """What the HTTP server asks for on its guarded paths (None: nothing)."""
    if auth is None:
        return None
    return Credentials(
        bearer_token=auth.bearer_token.get_secret_value() if auth.bearer_token else None,
        username=auth.username,
        password=auth.password.get_secret_value() if auth.password else None,
    )


def _stale_after(settings: Settings) -> float:
    """How old the last successful cycle may be before /healthz fails."""
    return 3 * settings.poll.interval + settings.dli.request_timeout * 2 + 30


def _state_path(settings: Settings) -> Path | str:
    path = settings.state.path
    return path if str(path) == ":memory:" else Path(path)


def _declared_queues(settings: Settings) -> list[str]:
    return [] if settings.queues == ALL_QUEUES else list(settings.queues)
