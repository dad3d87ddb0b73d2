"""The daemon's periodic jobs on its scheduler (called by `monitor.app` only).

`schedule_jobs` builds the scheduler with every job the daemon runs: one poll cycle per project
(first run now, then the project's own interval), the outbox drain for retries that fall due
between cycles, and a re-post of firing alerts per Alertmanager sink (whose firing alerts
`restore_alerts` rebuilds from the store at start and on each new term). Each job runs through
`Leadership.guard` (a standby skips it) and is wrapped by `logged`, so an unexpected exception
is logged instead of lost inside the scheduler. The caller gets the `TrackedJob`s back to drain
them at shutdown.

What does not live here: the APScheduler mechanics, drain and clock watch (`monitor.scheduler`),
when the scheduler starts and stops (`monitor.app`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.config import AlertmanagerSinkSettings, Settings
from monitor.leadership import Leadership
from monitor.models import Clock
from monitor.pipeline import Pipeline
from monitor.scheduler import TrackedJob, add_periodic, build_scheduler
from monitor.sinks import AlertmanagerSink
from monitor.sinks.base import Sink
from monitor.store import Outbox

log = structlog.get_logger(__name__)

DELIVERY_INTERVAL_S = 1.0
"""How often retries that fell due between cycles are attempted: waits start near one second,
so a blip of two failed posts costs seconds. A drain with nothing due is one indexed query."""


def schedule_jobs(
    settings: Settings,
    *,
    pipelines: Sequence[Pipeline],
    sinks: Mapping[str, Sink],
    leadership: Leadership,
    deliver: Callable[[], Awaitable[object]],
) -> tuple[AsyncIOScheduler, list[TrackedJob]]:
    """A scheduler (not started yet) holding every job, and those jobs for the drain."""
    drain_outbox = leadership.guard("outbox drain", deliver)
    delivery_job = TrackedJob("outbox drain", logged(drain_outbox))
    scheduler = build_scheduler(
        cycle=None,
        interval_s=settings.poll.interval,
        delivery=delivery_job,
        delivery_interval_s=min(DELIVERY_INTERVAL_S, settings.poll.interval),
    )
    jobs = [*_cycle_jobs(scheduler, settings, pipelines, leadership), delivery_job]
    jobs += _alert_refreshers(scheduler, settings, sinks, leadership)
    return scheduler, jobs


def _cycle_jobs(
    scheduler: AsyncIOScheduler,
    settings: Settings,
    pipelines: Sequence[Pipeline],
    leadership: Leadership,
) -> list[TrackedJob]:
    """One cycle job per project, each starting now and keeping its own interval."""
    jobs: list[TrackedJob] = []
    for pipeline in pipelines:
        cycle = leadership.guard(
            pipeline.job_id, pipeline.run_cycle, forget=pipeline.cycle.forget, cycle=True
        )
        job = TrackedJob(f"poll cycle {pipeline.project.name}", logged(cycle))
        interval = settings.poll.interval
        add_periodic(scheduler, job, job_id=pipeline.job_id, interval_s=interval, start_now=True)
        jobs.append(job)
    return jobs


def _alert_refreshers(
    scheduler: AsyncIOScheduler,
    settings: Settings,
    sinks: Mapping[str, Sink],
    leadership: Leadership,
) -> list[TrackedJob]:
    """Re-post firing Alertmanager alerts every `repost_interval`, so none auto-resolves."""
    jobs: list[TrackedJob] = []
    for entry in settings.sinks:
        sink = sinks.get(entry.name)
        if isinstance(entry, AlertmanagerSinkSettings) and isinstance(sink, AlertmanagerSink):
            refresh = leadership.guard(f"alert refresh {entry.name}", sink.refresh)
            job = TrackedJob(f"alert refresh {entry.name}", logged(refresh))
            add_periodic(
                scheduler, job, job_id=f"refresh-{entry.name}", interval_s=entry.repost_interval
            )
            jobs.append(job)
    return jobs


async def restore_alerts(sinks: Mapping[str, Sink], store: Outbox, clock: Clock) -> None:
    """Rebuild each Alertmanager sink's firing alerts from the events it was delivered, so
    `refresh` keeps re-posting what fired before a restart or under the previous leader."""
    for sink in sinks.values():
        if isinstance(sink, AlertmanagerSink):
            horizon = sink.memory_horizon
            since = None if horizon is None else clock() - horizon
            firing = await sink.restore(await store.delivered_events(sink.name, since))
            if firing:
                log.info("firing alerts restored", sink=sink.name, alerts=firing)


def logged(func: Any) -> Any:
    """Wrap a job so that an unexpected exception is logged, never lost in the scheduler."""

    async def job() -> None:
        try:
            await func()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduled job failed")

    return job
