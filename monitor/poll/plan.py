"""The planner: what one incremental cycle may spend, and which way of listing costs least.

Three decisions, each from counts the previous cycles left behind (no I/O here):

- scope: list active and new jobs project-wide (one listing per state, queues filtered on our
  side) or per queue (one listing per queue and state); whichever needs fewer pages;
- ended jobs: tracked active jobs that left the active listings are looked up one `/state` call
  each, or through the `dead`/`success` listings walked newest first down to the oldest of
  them, whichever needs fewer requests (`EndedIndex` estimates the walk);
- budget: `dli.max_requests_per_minute` is shared by every call. A cycle's allowance is what
  the budget grants in one effective interval; listings come first, confirmations next, the
  reconciliation walk gets what is left. When the interval cannot carry the listings and
  confirmations, the effective interval stretches to fit.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from monitor.models import Job, JobState

ACTIVE_STATES: tuple[JobState, ...] = (JobState.STARTING, JobState.RUNNING, JobState.RECOVERING)
"""The states whose listings together hold every active job."""

ENDED_STATES: tuple[JobState, ...] = (JobState.DEAD, JobState.SUCCESS)
"""The terminal states DLI documents, each with its own listing."""


def pages(count: int, page_size: int) -> int:
    """Requests for a listing of `count` rows: it ends on the first short page."""
    return count // page_size + 1


@dataclass
class Planner:
    """Keeps the counts of recent cycles and turns them into plans and allowances."""

    page_size: int
    interval_s: float
    max_per_minute: int
    active: dict[tuple[str, JobState], int] = field(default_factory=dict)
    """Active jobs per (queue, state) as of the last active listings."""
    new_per_cycle: dict[str, int] = field(default_factory=dict)
    """Rows the last newest-first walk returned, per queue."""
    recent_core: list[int] = field(default_factory=list)
    """Requests of the last few cycles spent on listings and confirmations."""
    effective_interval_s: float = 0.0

    def __post_init__(self) -> None:
        self.effective_interval_s = self.interval_s

    def project_wide(self, queues: Iterable[str] | None) -> bool:
        """True when one project-wide listing per state is cheaper than per-queue listings."""
        if queues is None or not self.active:
            return True
        wanted = list(queues)
        per_queue = sum(
            pages(self.active.get((q, s), 0), self.page_size) for q in wanted for s in ACTIVE_STATES
        ) + sum(pages(self.new_per_cycle.get(q, 0), self.page_size) for q in wanted)
        project = sum(
            pages(sum(n for (_q, s2), n in self.active.items() if s2 is s), self.page_size)
            for s in ACTIVE_STATES
        ) + pages(sum(self.new_per_cycle.values()), self.page_size)
        return project <= per_queue

    def learn(
        self, active: Iterable[Job], new_rows: Iterable[Job], *, queues: set[str] | None
    ) -> None:
        """Remember this cycle's active and new counts (for `queues`, or all when None)."""
        counts: dict[tuple[str, JobState], int] = {}
        for job in active:
            counts[(job.queue, job.state)] = counts.get((job.queue, job.state), 0) + 1
        fresh: dict[str, int] = {}
        for job in new_rows:
            fresh[job.queue] = fresh.get(job.queue, 0) + 1
        if queues is None:
            self.active, self.new_per_cycle = counts, fresh
            return
        self.active = {k: v for k, v in self.active.items() if k[0] not in queues} | counts
        self.new_per_cycle = {
            q: n for q, n in self.new_per_cycle.items() if q not in queues
        } | fresh

    def allowance(self) -> float:
        """Requests one cycle may make within the budget (infinite when there is none)."""
        if self.max_per_minute <= 0:
            return math.inf
        return math.floor(self.max_per_minute * self.effective_interval_s / 60.0)

    def record_core(self, requests: int) -> bool:
        """Note what listings and confirmations cost; True when the effective interval moved."""
        self.recent_core = [*self.recent_core[-2:], requests]
        if self.max_per_minute <= 0:
            return False
        need = 60.0 * max(self.recent_core) / self.max_per_minute
        wanted = max(self.interval_s, math.ceil(need))
        if wanted == self.effective_interval_s:
            return False
        if wanted < self.effective_interval_s and wanted > self.effective_interval_s * 0.8:
            return False  # shrink only on a clear change, so the schedule does not flap
        self.effective_interval_s = wanted
        return True


@dataclass
class EndedIndex:
    """Creation times of the ended jobs seen since this process started, per queue and state.

    It estimates how many rows a `state=dead` or `state=success` walk must read to reach a
    given creation time. Jobs created before `covered_since` may be missing from it, so an
    estimate reaching back past that is refused (None): state calls are then the safe choice.
    """

    covered_since: datetime | None = None
    _times: dict[tuple[str, JobState], list[float]] = field(default_factory=dict)
    _seen: dict[str, tuple[str, JobState, float]] = field(default_factory=dict)

    def cover_from(self, moment: datetime) -> None:
        """Start coverage at `moment` (the first high water of this process)."""
        if self.covered_since is None:
            self.covered_since = moment

    def add(self, jobs: Iterable[Job]) -> None:
        """Index every ended job among `jobs` not indexed yet."""
        for job in jobs:
            if job.state not in ENDED_STATES or job.create_time is None or job.id in self._seen:
                continue
            stamp = job.create_time.timestamp()
            self._seen[job.id] = (job.queue, job.state, stamp)
            bisect.insort(self._times.setdefault((job.queue, job.state), []), stamp)

    def rows_since(self, moment: datetime, state: JobState, queues: set[str] | None) -> int | None:
        """Ended jobs in `state` created at or after `moment` (None when not covered)."""
        if self.covered_since is None or moment < self.covered_since:
            return None
        stamp = moment.timestamp()
        return sum(
            len(times) - bisect.bisect_left(times, stamp)
            for (queue, kind), times in self._times.items()
            if kind is state and (queues is None or queue in queues)
        )

    def forget_before(self, moment: datetime) -> None:
        """Drop what is older than any walk can need (the oldest tracked active job)."""
        stamp = moment.timestamp()
        stale = [job_id for job_id, (_q, _s, t) in self._seen.items() if t < stamp]
        if len(stale) < 1000:
            return  # pruning is a rebuild: only worth it in bulk
        for job_id in stale:
            del self._seen[job_id]
        for key, times in self._times.items():
            del times[: bisect.bisect_left(times, stamp)]
            self._times[key] = times


def walk_ended_cost(
    index: EndedIndex,
    missing: Mapping[str, Job],
    page_size: int,
    queues: set[str] | None,
) -> int | None:
    """Requests to find `missing` jobs in the ended listings (None when it cannot be told)."""
    created = [job.create_time for job in missing.values()]
    if not created or any(moment is None for moment in created):
        return None
    oldest = min(moment for moment in created if moment is not None)
    total = 0
    for state in ENDED_STATES:
        rows = index.rows_since(oldest, state, queues)
        if rows is None:
            return None
        total += pages(rows + len(missing), page_size)
    return total
