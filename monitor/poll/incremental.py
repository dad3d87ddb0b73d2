"""Incremental polling: what changed this cycle, at a cost that follows activity, not history.

`IncrementalPoller.observe` learns, for every target at once:
1. the active jobs: one listing per active state (`starting`, `running`, `recovering`),
   project-wide or per queue as the planner says, walked to the end;
2. the new jobs: the unfiltered listing, newest first, down to the last high water minus an
   overlap (first sight of a job already `dead` is a failure, as always); order is verified,
   and a walk that met rows out of order sends its targets to a full listing this cycle;
3. the jobs that left the active set: tracked active jobs absent from both, looked up by
   `/state` calls or by walking the ended listings, whichever the planner finds cheaper, and
   only as far as the budget allows (listings first; the rest are asked next cycle);
4. a few pages of reconciliation (`monitor.poll.reconcile`).
All listings of one step run concurrently. The result is one `Observation` per target (or the
exception that failed it); the cycle diffs it. No diffing or persistence here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

import structlog

from monitor.dli.client import DliClient
from monitor.models import Job, PollMark, Snapshot
from monitor.poll.ended import EndedFinder
from monitor.poll.listing import (
    ALL_QUEUES,
    Listing,
    ListingIncomplete,
    OrderNotHonoured,
    fetch_page,
)
from monitor.poll.observation import Observation
from monitor.poll.plan import EndedIndex, Planner
from monitor.poll.reconcile import PassReport, Reconciler
from monitor.poll.units import IncrementalOptions, Unit, UnitLister

log = structlog.get_logger(__name__)

T = TypeVar("T")


class IncrementalPoller:
    """Observes every target per cycle with listings planned by a `Planner`."""

    def __init__(
        self,
        client: DliClient,
        options: IncrementalOptions,
        planner: Planner,
        reconciler: Callable[[], Reconciler],
    ) -> None:
        self._client = client
        self._options = options
        self._planner = planner
        self._new_reconciler = reconciler
        self._reconcilers: dict[str | None, Reconciler] = {}
        self._index = EndedIndex()
        self._limit = asyncio.Semaphore(max(1, options.concurrency))
        self._lister = UnitLister(client, options, planner, self._limit)
        self._project_wide = True
        self._started_with = 0
        self.last_pass: PassReport | None = None
        self.costs: dict[str, int] = {}
        """Requests of the last observation by purpose (listings, ended_walk, state_calls,
        reconcile), for the cycle's summary line."""

    @property
    def planner(self) -> Planner:
        """The planner (its effective interval is what the scheduler should use)."""
        return self._planner

    async def observe(
        self,
        tracked: Mapping[str, Snapshot | None],
        marks: Mapping[str, PollMark | None],
        *,
        now: datetime,
    ) -> dict[str, Observation | BaseException]:
        """One incremental look at every target; a failed target maps to its exception."""
        self._started_with = self._client.requests_sent
        self.costs = {}
        units = self._units()
        await self._lister.run(units, marks)
        self.costs["listings"] = self.spent()
        out: dict[str, Observation | BaseException] = {}
        for unit in units:
            for target in unit.targets:
                out[target] = self._observation(unit, target, marks.get(target), now)
        self._learn(units)
        observations = {t: o for t, o in out.items() if isinstance(o, Observation)}
        postponed = await self._resolve_ended(observations, tracked, now)
        self._planner.record_core(self.spent() + postponed)
        before = self.spent()
        await self._reconcile(observations, units, self._planner.allowance() - self.spent())
        self.costs["reconcile"] = self.spent() - before
        self._forget(tracked)
        return out

    def forget(self) -> None:
        """Drop what was learnt of the listings (ended index, reconciliation walks): after a
        time without polling (a standby that leads again) it no longer covers every job."""
        self._reconcilers.clear()
        self._index = EndedIndex()

    def spent(self) -> int:
        """Requests made since this cycle's observation began."""
        return self._client.requests_sent - self._started_with

    def _forget(self, tracked: Mapping[str, Snapshot | None]) -> None:
        """Let the ended index drop what predates every tracked active job."""
        created = [
            job.create_time
            for snapshot in tracked.values()
            for job in (snapshot or {}).values()
            if not job.state.is_terminal and job.create_time is not None
        ]
        if created:
            self._index.forget_before(min(created))

    def _units(self) -> list[Unit]:
        targets = self._options.targets
        queues = None if ALL_QUEUES in targets else targets
        self._project_wide = self._planner.project_wide(queues)
        if self._project_wide:
            return [Unit(None, targets)]
        return [Unit(target, (target,)) for target in targets]

    def _observation(
        self, unit: Unit, target: str, mark: PollMark | None, now: datetime
    ) -> Observation | BaseException:
        if isinstance(unit.error, OrderNotHonoured):
            return Observation(fallback="order", detail=str(unit.error))
        if unit.error is not None or unit.new is None:
            return unit.error or ListingIncomplete("no newest-first walk")
        observation = Observation()
        keep = _keeper(target)
        for listing in unit.active:
            observation.take(listing, keep)
        observation.take(unit.new, keep)
        observation.mark = _next_mark(mark, unit.new.newest, now)
        self._index.cover_from(observation.mark.high_water or now, unit.new.jobs.values())
        return observation

    def _learn(self, units: Sequence[Unit]) -> None:
        """Feed the planner and the ended index from this cycle's listings."""
        for unit in units:
            if unit.error is not None or unit.new is None:
                continue
            active = [job for listing in unit.active for job in listing.jobs.values()]
            fresh = list(unit.new.jobs.values())
            queues = None if unit.queue is None else {unit.queue}
            self._planner.learn(active, fresh, queues=queues)
            self._index.add(fresh)
            created = [job.create_time for job in fresh if job.create_time is not None]
            water = unit.high_water
            arrived = len(created) if water is None else sum(t > water for t in created)
            reconciler = self._reconcilers.get(unit.queue)
            if reconciler is not None:
                reconciler.shift(arrived)

    async def _resolve_ended(
        self,
        observations: Mapping[str, Observation],
        tracked: Mapping[str, Snapshot | None],
        now: datetime,
    ) -> int:
        """Learn the new state of tracked active jobs that no listing showed this cycle.

        Returns how many state calls the budget made wait for the next cycle.
        """
        missing: dict[str, tuple[str, Job]] = {}
        for target, observation in observations.items():
            if observation.fallback:
                continue
            for job in (tracked.get(target) or {}).values():
                if not job.state.is_terminal and job.id not in observation.sightings:
                    missing[job.id] = (target, job)
        if not missing:
            return 0
        finder = EndedFinder(self._client, self._index, self._limit, self._options.page_size)
        ended = await finder.find(
            {job_id: job for job_id, (_t, job) in missing.items()},
            walk=self._project_wide,
            room=self._planner.allowance() - self.spent(),
            now=now,
            concurrency=self._options.concurrency,
        )
        for job in ended.found:
            observations[missing[job.id][0]].see(job)
        for job_id, state in ended.answers.items():
            observations[missing[job_id][0]].confirmed[job_id] = state
        self.costs["ended_walk"] = ended.walk_pages
        self.costs["state_calls"] = ended.state_calls
        return ended.postponed

    async def _reconcile(
        self, observations: Mapping[str, Observation], units: Sequence[Unit], room: float
    ) -> None:
        """Read the pages of history due this cycle, as far as the budget allows."""
        for unit in units:
            if unit.error is not None:
                continue
            reconciler = self._reconcilers.setdefault(unit.queue, self._new_reconciler())
            due = reconciler.pages_due(self._planner.effective_interval_s)
            read = 0
            while read < due and room >= 1:
                listing, rows = await self._limited(
                    fetch_page(
                        self._client,
                        offset=reconciler.offset,
                        page_size=self._options.page_size,
                        queue_name=unit.queue,
                    )
                )
                read += 1
                room -= 1
                self._index.add(listing.jobs.values())
                for target in unit.targets:
                    observation = observations.get(target)
                    if observation is not None and not observation.fallback:
                        _take_reconciled(observation, listing, _keeper(target))
                report = reconciler.advance(rows, at=time.monotonic())
                if report is not None:
                    self.last_pass = report
                    log.info(
                        "reconciliation pass complete",
                        queue=unit.queue or ALL_QUEUES,
                        pages=report.pages,
                        rows=report.rows,
                        seconds=round(report.seconds, 1),
                    )
                    break
            reconciler.spent(read)

    async def _limited(self, call: Awaitable[T]) -> T:
        async with self._limit:
            return await call


def _keeper(target: str) -> Callable[[Job], bool]:
    """Which jobs of a listing belong to a target."""
    if target == ALL_QUEUES:
        return lambda _job: True
    return lambda job: job.queue == target


def _take_reconciled(
    observation: Observation, listing: Listing, keep: Callable[[Job], bool]
) -> None:
    """Add reconciliation rows that no other listing showed this cycle.

    Those no other call of this cycle told anything about are marked: a change they carry is
    one incremental polling missed. A job a state call already answered for is not.
    """
    observation.pages += listing.pages
    for job in listing.jobs.values():
        if keep(job) and job.id not in observation.sightings:
            observation.sightings[job.id] = job
            if job.id not in observation.confirmed:
                observation.reconciled.add(job.id)


def _next_mark(mark: PollMark | None, newest: datetime | None, now: datetime) -> PollMark:
    """The high water after a successful newest-first walk (and the floor of a baseline)."""
    if mark is None:
        return PollMark(high_water=newest, baseline_floor=newest)
    waters = [w for w in (mark.high_water, newest) if w is not None]
    return PollMark(high_water=max(waters, default=None), baseline_floor=mark.baseline_floor)
