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
from collections.abc import Iterable
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

    def expected_pages(self, queue: str | None, state: JobState) -> int:
        """Full pages the active listing of `state` (one queue, or None: all) had last cycle:
        what can be asked for at once (the short page that ends it follows)."""
        count = sum(n for (q, s2), n in self.active.items() if s2 is state and queue in (None, q))
        return max(1, count // self.page_size)

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
    """Creation times of the jobs seen since this process started, to price ended walks.

    It estimates how many rows a `state=dead` or `state=success` walk reads to reach a given
    creation time: exactly for the ended jobs created since `covered_since` (every job created
    after it is seen by a newest-first walk), and by extrapolating the creation rate seen since
    then for older ones (None while that rate is unknown, the first `MIN_SPAN_S`).
    """

    covered_since: datetime | None = None
    created: int = 0
    """Jobs created since `covered_since`, of any state."""
    seed: tuple[int, float, dict[JobState, int]] = (0, 0.0, {})
    """From the first walk's rows: how many, over how many seconds of creation times, and
    how many of them per ended state (the rate and mix before anything was counted)."""
    _times: dict[JobState, list[float]] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    _fresh: set[str] = field(default_factory=set)

    MIN_SPAN_S = 10.0

    def cover_from(self, moment: datetime, rows: Iterable[Job] = ()) -> None:
        """Start coverage at `moment` (the first high water of this process); `rows` (the
        first walk's) seed the creation rate and the mix of ended states."""
        if self.covered_since is not None:
            return
        self.covered_since = moment
        times = sorted(job.create_time.timestamp() for job in rows if job.create_time)
        mix: dict[JobState, int] = {}
        for job in rows:
            if job.state in ENDED_STATES:
                mix[job.state] = mix.get(job.state, 0) + 1
        if len(times) > 1:
            self.seed = (len(times), max(times[-1] - times[0], 1.0), mix)

    def add(self, jobs: Iterable[Job]) -> None:
        """Index the ended jobs among `jobs`, and count every job created since coverage."""
        for job in jobs:
            if job.create_time is None:
                continue
            after = self.covered_since is not None and job.create_time > self.covered_since
            if after and job.id not in self._fresh:
                self._fresh.add(job.id)
                self.created += 1
            if job.state not in ENDED_STATES or job.id in self._seen:
                continue
            self._seen.add(job.id)
            bisect.insort(self._times.setdefault(job.state, []), job.create_time.timestamp())

    def rows_since(self, moment: datetime, state: JobState, now: datetime) -> float | None:
        """About how many jobs in `state` were created at or after `moment` (None: unknown)."""
        if self.covered_since is None:
            return None
        times = self._times.get(state, [])
        exact = len(times) - bisect.bisect_left(times, moment.timestamp())
        if moment >= self.covered_since:
            return exact
        seed_rows, seed_span, seed_mix = self.seed
        span = max((now - self.covered_since).total_seconds(), 0.0)
        if span < self.MIN_SPAN_S and not seed_rows:
            return None
        since = self.covered_since.timestamp()
        covered = len(times) - bisect.bisect_left(times, since)
        ended = sum(len(t) - bisect.bisect_left(t, since) for t in self._times.values())
        mix_ended = ended + sum(seed_mix.values())
        share = (covered + seed_mix.get(state, 0)) / mix_ended if mix_ended else 0.5
        rate = (max(self.created, ended) + seed_rows) / max(span + seed_span, 1.0)
        return exact + rate * share * (self.covered_since - moment).total_seconds()

    def forget_before(self, moment: datetime) -> None:
        """Drop what is older than any walk can need (the oldest tracked active job)."""
        stamp = min(moment, self.covered_since or moment).timestamp()
        for times in self._times.values():
            del times[: bisect.bisect_left(times, stamp)]


@dataclass(frozen=True, slots=True)
class EndedPlan:
    """How to learn the new state of jobs that left the active listings."""

    floor: datetime | None
    """Walk the ended listings down to this creation time (None: no walk)."""
    pages: int
    """The pages the walks are expected to need (the cap on each walk)."""
    state_calls: int
    """Jobs expected to be left for state calls (created before `floor`)."""
    certain: bool = True
    """False when the estimate reached back before the index's coverage (extrapolated or
    unknown): then a pay-as-you-go walk is worth a try."""


def plan_ended(
    index: EndedIndex, missing: Iterable[Job], page_size: int, now: datetime
) -> EndedPlan:
    """The cheapest split: walk down to the creation time of some missing job, ask the rest.

    Walking to the i-th newest missing job costs the pages of both ended listings down to its
    creation time; the older ones cost one state call each. The split with the lowest total
    wins; not walking at all (every job a state call) is one of the candidates.
    """
    jobs = sorted(
        (job for job in missing if job.create_time is not None),
        key=lambda job: job.create_time or now,
        reverse=True,
    )
    unplaced = sum(1 for job in missing if job.create_time is None)
    covered = index.covered_since
    certain = covered is not None and all(
        job.create_time is not None and job.create_time >= covered for job in jobs
    )
    best = EndedPlan(None, 0, len(jobs) + unplaced, certain)
    for rank, job in enumerate(jobs, start=1):
        assert job.create_time is not None
        cost = 0
        for state in ENDED_STATES:
            rows = index.rows_since(job.create_time, state, now)
            if rows is None:
                return best
            cost += pages(int(rows) + rank, page_size)
        older = len(jobs) - rank + unplaced
        if cost + older < best.pages + best.state_calls:
            best = EndedPlan(job.create_time, cost, older, certain)
    return best
