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
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import structlog

from monitor.dli.client import DliClient
from monitor.dli.errors import DliAuthError
from monitor.models import Job, PollMark, Snapshot
from monitor.poll.ended import EndedFinder
from monitor.poll.listing import (
    ALL_QUEUES,
    Listing,
    ListingIncomplete,
    OrderNotHonoured,
    fetch_listing,
    fetch_page,
)
from monitor.poll.observation import Observation
from monitor.poll.plan import ACTIVE_STATES, EndedIndex, Planner
from monitor.poll.reconcile import PassReport, Reconciler

log = structlog.get_logger(__name__)

FIRST_PAGE_ONLY = datetime.max.replace(tzinfo=UTC)
"""A floor no row reaches: a baseline reads one page of the newest-first listing."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IncrementalOptions:
    """The knobs of incremental polling."""

    targets: tuple[str, ...]
    page_size: int = 100
    overlap_s: float = 30.0
    concurrency: int = 4


@dataclass
class _Unit:
    """One scope of listings: the project (queue None) or one queue, and what it returned."""

    queue: str | None
    targets: tuple[str, ...]
    active: list[Listing] = field(default_factory=list)
    new: Listing | None = None
    error: BaseException | None = None
    high_water: datetime | None = None
    """The oldest high water of the unit's targets before this cycle's walk."""


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
        await self._list_units(units, marks)
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

    def _units(self) -> list[_Unit]:
        targets = self._options.targets
        queues = None if ALL_QUEUES in targets else targets
        self._project_wide = self._planner.project_wide(queues)
        if self._project_wide:
            return [_Unit(None, targets)]
        return [_Unit(target, (target,)) for target in targets]

    async def _list_units(
        self, units: Sequence[_Unit], marks: Mapping[str, PollMark | None]
    ) -> None:
        """Every newest-first walk and every unit's active listings, concurrently.

        The first walk goes alone: when it fails on authentication nothing else is sent, so a
        wrong key costs one rejected request per cycle, not one per listing (the gateway locks
        a key out after five).
        """
        calls: list[tuple[_Unit, str, Awaitable[list[Listing]]]] = []
        for unit in units:
            floor = self._floor([marks.get(t) for t in unit.targets])
            if floor is not FIRST_PAGE_ONLY:
                unit.high_water = floor + timedelta(seconds=self._options.overlap_s)
            calls.append((unit, "new", self._walk_new(unit.queue, floor)))
            calls.append((unit, "active", self._active_in_order(unit.queue)))
        first = await asyncio.gather(calls[0][2], return_exceptions=True)
        if isinstance(first[0], DliAuthError):
            for _unit, _kind, call in calls[1:]:
                _discard(call)
            for unit in units:
                unit.error = first[0]
            return
        rest = await asyncio.gather(
            *(self._limited(call) for _u, _k, call in calls[1:]), return_exceptions=True
        )
        for (unit, kind, _call), result in zip(calls, [*first, *rest], strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                if unit.error is None or isinstance(result, OrderNotHonoured):
                    unit.error = result
            elif kind == "active":
                unit.active = result
            else:
                unit.new = result[0]

    async def _walk_new(self, queue: str | None, floor: datetime) -> list[Listing]:
        """The newest-first walk down to `floor` (as a one-item list, like the active ones)."""
        size = self._options.page_size
        return [await fetch_listing(self._client, queue_name=queue, page_size=size, floor=floor)]

    async def _active_in_order(self, queue: str | None) -> list[Listing]:
        """The active listings one after another, in the order jobs move through the states.

        A job that moves on between two listings (`starting` → `running`, `running` →
        `recovering`) is then still met by the later one, instead of slipping between them
        and costing a state call. Each listing asks for the pages it had last time at once.
        """
        listings = []
        for state in ACTIVE_STATES:
            listings.append(
                await fetch_listing(
                    self._client,
                    queue_name=queue,
                    state=state.value,
                    page_size=self._options.page_size,
                    ahead=self._planner.expected_pages(queue, state),
                )
            )
        return listings

    def _floor(self, marks: Sequence[PollMark | None]) -> datetime:
        """Where the newest-first walk may stop: the oldest high water less the overlap."""
        waters = [m.high_water for m in marks if m is not None and m.high_water is not None]
        if not waters:
            return FIRST_PAGE_ONLY
        return min(waters) - timedelta(seconds=self._options.overlap_s)

    def _observation(
        self, unit: _Unit, target: str, mark: PollMark | None, now: datetime
    ) -> Observation | BaseException:
        if isinstance(unit.error, OrderNotHonoured):
            return Observation(fallback="order")
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

    def _learn(self, units: Sequence[_Unit]) -> None:
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
        self, observations: Mapping[str, Observation], units: Sequence[_Unit], room: float
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


def _discard(call: Awaitable[list[Listing]]) -> None:
    """Close a listing coroutine that will never be awaited."""
    if isinstance(call, Coroutine):
        call.close()


def _keeper(target: str) -> Callable[[Job], bool]:
    """Which jobs of a listing belong to a target."""
    if target == ALL_QUEUES:
        return lambda _job: True
    return lambda job: job.queue == target


def _take_reconciled(
    observation: Observation, listing: Listing, keep: Callable[[Job], bool]
) -> None:
    """Add reconciliation rows that no other listing showed this cycle, marked as such."""
    observation.pages += listing.pages
    for job in listing.jobs.values():
        if keep(job) and job.id not in observation.sightings:
            observation.sightings[job.id] = job
            observation.reconciled.add(job.id)


def _next_mark(mark: PollMark | None, newest: datetime | None, now: datetime) -> PollMark:
    """The high water after a successful newest-first walk (and the floor of a baseline)."""
    if mark is None:
        return PollMark(high_water=newest, baseline_floor=newest)
    waters = [w for w in (mark.high_water, newest) if w is not None]
    return PollMark(high_water=max(waters, default=None), baseline_floor=mark.baseline_floor)
