"""One DLI project's poll pipeline: its client, planner, poller and cycle, on its own schedule.

The daemon runs one `Pipeline` per project it polls (`Settings.projects`, each cut down to the
targets this shard owns). Each has its own `DliClient` (auth with its own token cache, its own
request budget, the TLS session for its endpoint from the shared `SessionPool`), `Planner`,
incremental poller and `Cycle`, and its own APScheduler job (`poll-cycle` for a single `dli:`
mapping, `poll-cycle:<name>` for a listed project) that follows the project's own effective
interval and is brought forward after a failure that may pass. The store, the dispatcher, the
metrics, the health record and the router are shared and handed in as `Shared`. Because every
project is its own job, a project whose polls fail or hang never delays another.

What does not live here: building the shared parts and the daemon's lifecycle (`monitor.app`).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.config import ProjectSettings, Settings
from monitor.diff import Baseline
from monitor.dispatch import Dispatcher
from monitor.dli.budget import RequestBudget
from monitor.dli.client import DliClient, RetryPolicy
from monitor.health import Health
from monitor.metrics import Metrics
from monitor.models import Clock, CycleReport, ProjectRef
from monitor.poll.cycle import Cycle, CycleOptions
from monitor.poll.incremental import IncrementalPoller
from monitor.poll.listing import ALL_QUEUES
from monitor.poll.plan import Planner
from monitor.poll.reasons import LASTING_FAILURES
from monitor.poll.reconcile import Reconciler
from monitor.poll.units import IncrementalOptions
from monitor.redact import redact_url
from monitor.routing import Router
from monitor.scheduler import CYCLE_JOB, run_soon, set_interval
from monitor.shard import Shard, target_key
from monitor.store import Store
from monitor.wiring import SessionPool, build_auth

log = structlog.get_logger(__name__)


def job_id_for(project: ProjectSettings) -> str:
    """The scheduler job id of a project's cycle: `poll-cycle`, or `poll-cycle:<name>`."""
    return f"{CYCLE_JOB}:{project.name}" if project.listed else CYCLE_JOB


def shard_key(project: ProjectSettings, target: str) -> str:
    """What a shard hashes for one target: `<project>/<queue>`, or the project for `*`.

    The single form hashes as project `default`, so its queues spread like a listed project's.
    """
    return target_key(project.name, None if target == ALL_QUEUES else target)


def owned_targets(project: ProjectSettings, shard: Shard) -> tuple[str, ...]:
    """The project's targets this shard polls (all of them without sharding)."""
    return tuple(t for t in project.targets if shard.owns(shard_key(project, t)))


@dataclass(frozen=True, slots=True)
class Shared:
    """What every project's pipeline shares: settings, sessions, state, delivery, observers."""

    settings: Settings
    sessions: SessionPool
    store: Store
    dispatcher: Dispatcher
    metrics: Metrics
    health: Health
    router: Router
    clock: Clock


class Pipeline:
    """One project's cycle and schedule: runs it, and follows its budget and failures."""

    def __init__(
        self, project: ProjectSettings, targets: tuple[str, ...], cycle: Cycle, shared: Shared
    ) -> None:
        self.project = project
        self.targets = targets
        self.cycle = cycle
        self.job_id = job_id_for(project)
        self._poll = shared.settings.poll
        self.interval_s = self._poll.interval
        """The poll interval in force (longer than configured when the budget says so)."""
        self.scheduler: AsyncIOScheduler | None = None
        self._stretch_logged = False

    @property
    def ref(self) -> ProjectRef:
        """The project as labels and store keys name it."""
        return self.project.ref

    def summary(self) -> dict[str, object]:
        """The project as the start-up log line shows it: name, region, endpoint, targets."""
        return {
            "name": self.project.name,
            "region": self.project.region,
            "endpoint": redact_url(str(self.project.dli.endpoint)),
            "targets": list(self.targets),
        }

    async def run_cycle(self) -> CycleReport:
        """One cycle; what the project's scheduler job runs (it then follows its interval)."""
        report = await self.cycle.run_once()
        self._follow_budget()
        self._hurry_after(report)
        return report

    def _hurry_after(self, report: CycleReport) -> None:
        """After a failure that may pass, run the next cycle soon rather than an interval later."""
        configured = self._poll
        if report.ok or configured.failure_retry <= 0 or self.scheduler is None:
            return
        if self.interval_s > configured.interval or report.failure_reasons & LASTING_FAILURES:
            return  # the budget is binding, or trying sooner cannot help
        delay = min(max(1.0, configured.failure_retry), self.interval_s)
        if delay < self.interval_s:
            run_soon(self.scheduler, self.job_id, delay)
            log.debug(
                "next cycle brought forward after a failed poll",
                project=self.project.name,
                delay_s=delay,
            )

    def _follow_budget(self) -> None:
        """Move the cycle's schedule to the interval the request budget allows, and say so."""
        configured = self._poll.interval
        wanted = self.cycle.effective_interval_s or configured
        if wanted == self.interval_s:
            return
        if wanted > configured and not self._stretch_logged:
            self._stretch_logged = True
            log.warning(
                "poll interval stretched to fit the DLI request budget",
                project=self.project.name,
                configured_s=configured,
                effective_s=wanted,
                max_requests_per_minute=self.project.dli.max_requests_per_minute,
            )
        elif wanted == configured:
            log.info(
                "poll interval back to the configured one",
                project=self.project.name,
                interval_s=configured,
            )
        self.interval_s = wanted
        if self.scheduler is not None:
            set_interval(self.scheduler, self.job_id, wanted)


def build_pipeline(project: ProjectSettings, targets: tuple[str, ...], shared: Shared) -> Pipeline:
    """A project's pipeline over `targets` (its own client, budget, planner and cycle)."""
    settings, dli, ref = shared.settings, project.dli, project.ref
    client = DliClient(
        shared.sessions.get(dli.tls, setting=f"{project.path}.tls"),
        endpoint=str(dli.endpoint),
        project_id=dli.project_id,
        auth=build_auth(dli, shared.sessions, shared.clock, setting=project.path),
        timeout_s=dli.request_timeout,
        budget=RequestBudget(dli.max_requests_per_minute),
        retry=RetryPolicy(attempts=dli.retry.attempts, backoff=tuple(dli.retry.backoff)),
        observer=lambda operation, code: shared.metrics.observe_api_request(
            operation, code, project=ref
        ),
    )
    planner = Planner(
        page_size=dli.page_size,
        interval_s=settings.poll.interval,
        max_per_minute=dli.max_requests_per_minute,
    )
    cycle = Cycle(
        incremental=_incremental(settings, project, targets, client, planner),
        planner=planner,
        client=client,
        store=shared.store,
        dispatcher=shared.dispatcher,
        metrics=shared.metrics,
        health=shared.health,
        router=shared.router,
        options=CycleOptions(
            targets=targets,
            page_size=dli.page_size,
            listing_attempts=settings.poll.listing_attempts,
            confirm_concurrency=dli.max_concurrency,
            baseline=Baseline(settings.poll.baseline),
            delivery_budget_s=max(5.0, settings.poll.interval / 2),
            keep_ended_s=max(settings.metrics.job_series_ttl, 2 * settings.poll.interval),
        ),
        clock=shared.clock,
        rules=settings.rules,
        project=ref,
    )
    return Pipeline(project, targets, cycle, shared)


def _incremental(
    settings: Settings,
    project: ProjectSettings,
    targets: tuple[str, ...],
    client: DliClient,
    planner: Planner,
) -> IncrementalPoller | None:
    """The incremental poller `poll.mode` asks for (None: full listings)."""
    if settings.poll.mode != "incremental":
        return None
    page_size = project.dli.page_size
    return IncrementalPoller(
        client,
        IncrementalOptions(
            targets=targets,
            page_size=page_size,
            overlap_s=settings.poll.overlap,
            concurrency=project.dli.max_concurrency,
            listing_attempts=settings.poll.listing_attempts,
        ),
        planner,
        lambda: Reconciler(full_resync_s=settings.poll.full_resync, page_size=page_size),
    )
