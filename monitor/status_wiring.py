"""Builds the status page's sources from the daemon's parts (called by `monitor.app` only).

`build_status_pages` hands `monitor.status_html.StatusPages` what it reads: the store, the
metrics' job counts, the probes' view, each pipeline's snapshots held in memory and its poll
interval in force, the configured sinks with their send windows, and the sinks' activity.
Nothing is copied: every page asks the live parts again.

What does not live here: what the page shows (`monitor.status_page`, `monitor.status_html`).
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor import __version__
from monitor.config import Settings
from monitor.metrics import Metrics
from monitor.models import Clock
from monitor.pipeline import Pipeline
from monitor.server import Probes
from monitor.status_html import StatusPages
from monitor.status_page import ProjectPoll, StatusSources, StatusStore, TargetJobs
from monitor.status_sinks import SinkActivity, SinkSpec
from monitor.wiring import build_budgets


def build_status_pages(
    settings: Settings,
    *,
    store: StatusStore,
    metrics: Metrics,
    probes: Probes,
    pipelines: Sequence[Pipeline],
    activity: SinkActivity,
    clock: Clock,
) -> StatusPages:
    """The status page's views over the running daemon's parts."""

    async def targets() -> list[TargetJobs]:
        found = []
        for pipeline in pipelines:
            for target in pipeline.targets:
                jobs = await pipeline.cycle.snapshot(target)
                found.append(TargetJobs(pipeline.project.key(target), pipeline.ref, jobs))
        return found

    def polls() -> list[ProjectPoll]:
        configured = settings.poll.interval
        return [ProjectPoll(p.project.name, configured, p.interval_s) for p in pipelines]

    budgets = build_budgets(settings, clock)
    sinks = [SinkSpec(s.name, s.type, budgets[s.name].windows) for s in settings.sinks]
    sources = StatusSources(
        store=store,
        clock=clock,
        rules=settings.rules,
        version=__version__,
        probes=probes.snapshot,
        job_counts=metrics.job_counts,
        targets=targets,
        polls=polls,
        sinks=sinks,
        activity=activity,
    )
    return StatusPages(sources)
