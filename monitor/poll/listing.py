"""Listings: one paged walk of `GET /batches`, complete and consistent, or an exception.

`fetch_listing` pages with `from`/`size` (optionally filtered by queue and state) until a short
page, or, with a `floor`, until a page reaches jobs created before it (newest-first listings:
"what is new since last time"). Rows are parsed and de-duplicated by id. What it promises:

- a listing that reached its end is checked against `total` only when `total` behaves like a
  count of every matching job (stable across pages and not merely each page's length); DLI's
  docs leave its meaning open, so a `total` that equals each page's length is ignored;
- a listing walked down to a floor is checked for newest-first order (non-increasing
  `create_time`), since stopping early is only safe when the order holds: `OrderNotHonoured`;
- anything inconsistent raises `ListingIncomplete`, never a partial result.

`ask_states` asks `/state` about single jobs. No diffing, no persistence, no planning here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from monitor.dli.client import BatchPage, DliClient
from monitor.dli.errors import DliError, DliNotFound
from monitor.dli.parse import MalformedJob, parse_job
from monitor.models import Job, JobState

log = structlog.get_logger(__name__)

MAX_PAGES = 10_000
"""A listing longer than this many pages is refused rather than looped over forever."""

ALL_QUEUES = "*"
"""The target name that lists every job of the project, grouped by each job's own queue."""

NO_QUEUE = "-"
"""The queue name given to a job whose row names none (only possible with `*`)."""


class ListingIncomplete(Exception):
    """The listing could not be trusted as complete; nothing may be concluded from it."""


class OrderNotHonoured(ListingIncomplete):
    """A newest-first walk met rows out of `create_time` order: stopping early is unsafe."""


@dataclass(frozen=True, slots=True)
class Listing:
    """The jobs of one listing, and what the walk met on its way."""

    jobs: dict[str, Job]
    pages: int
    malformed: int = 0
    duplicates: int = 0
    unknown_states: frozenset[str] = field(default_factory=frozenset)
    reached_end: bool = True
    """False when the walk stopped at its floor before the last page."""
    newest: datetime | None = None
    """The newest `create_time` among the rows (for high-water marks)."""


@dataclass(slots=True)
class _Walk:
    """What one walk has gathered so far."""

    default_queue: str
    jobs: dict[str, Job] = field(default_factory=dict)
    malformed: int = 0
    duplicates: int = 0
    pages: int = 0
    unknown: set[str] = field(default_factory=set)
    totals: list[tuple[int | None, int]] = field(default_factory=list)
    """(total, rows on the page) of every page."""
    oldest: datetime | None = None
    newest: datetime | None = None
    ordered: bool = True
    disorder: str = ""
    """Where the order first broke, for the log line."""

    def take(self, page: BatchPage) -> None:
        """Parse one page's rows into the walk."""
        self.pages += 1
        self.totals.append((page.total, len(page.rows) + page.malformed))
        self.malformed += page.malformed
        for row in page.rows:
            try:
                job = parse_job(row, default_queue=self.default_queue)
            except MalformedJob:
                self.malformed += 1
                continue
            if job.id in self.jobs:  # pushed down by newer jobs: placed already
                self.duplicates += 1
                continue
            self._order(job.create_time)
            if job.state is JobState.UNKNOWN:
                self.unknown.add(job.raw_state)
            self.jobs[job.id] = job

    def listing(self, *, reached_end: bool) -> Listing:
        """What the walk gathered, as a `Listing`."""
        return Listing(
            jobs=self.jobs,
            pages=self.pages,
            malformed=self.malformed,
            duplicates=self.duplicates,
            unknown_states=frozenset(self.unknown),
            reached_end=reached_end,
            newest=self.newest,
        )

    def _order(self, created: datetime | None) -> None:
        """Track newest-first order: each row no newer than the one before it.

        A row without a creation time cannot be placed and is left out of the check.
        """
        if created is None:
            return
        if self.oldest is not None and created > self.oldest and self.ordered:
            self.ordered = False
            self.disorder = (
                f"page {self.pages}: a row created {created.isoformat()} after one created"
                f" {self.oldest.isoformat()}"
            )
        self.oldest = created if self.oldest is None else min(self.oldest, created)
        self.newest = created if self.newest is None else max(self.newest, created)


async def fetch_listing(
    client: DliClient,
    *,
    target: str | None = None,
    queue_name: str | None = None,
    state: str | None = None,
    page_size: int,
    floor: datetime | None = None,
    max_pages: int = MAX_PAGES,
    ahead: int = 1,
) -> Listing:
    """Walk one listing: to its end, or (with `floor`) down to jobs created before `floor`.

    `target` is the old way of naming the scope (a queue, or `*` for the project); `queue_name`
    None lists the whole project. `max_pages` bounds a floor walk: a walk that has not reached
    its floor by then raises (a gap that big is a job for a full listing, not an early stop).
    `ahead` pages are asked for at once at the start (the pages the listing had last time):
    the shorter the walk takes, the fewer rows shift under it while jobs change state.
    """
    if target is not None:
        queue_name = None if target == ALL_QUEUES else target
    walk = _Walk(default_queue=NO_QUEUE if queue_name is None else queue_name)
    limit = min(max_pages, MAX_PAGES)
    offset, batch, done = 0, max(1, min(ahead, limit)), False
    while not done:
        if walk.pages >= limit:
            raise ListingIncomplete(f"more than {walk.pages} pages")
        pages = await asyncio.gather(
            *(
                client.list_batches(
                    offset=offset + n * page_size,
                    size=page_size,
                    queue_name=queue_name,
                    state=state,
                )
                for n in range(batch)
            )
        )
        for page in pages:
            walk.take(page)
            short = len(page.rows) + page.malformed < page_size
            passed = floor is not None and walk.oldest is not None and walk.oldest < floor
            if short or passed:
                done, reached_end = True, short
                break
        offset += batch * page_size
        batch = 1
    if floor is not None and not walk.ordered:
        raise OrderNotHonoured(f"rows were not newest first ({walk.disorder})")
    if reached_end:
        check_total(walk.totals, len(walk.jobs) + walk.malformed, walk.duplicates)
    return walk.listing(reached_end=reached_end)


async def find_in_listing(
    client: DliClient,
    *,
    state: str,
    page_size: int,
    wanted: Mapping[str, datetime],
    max_pages: int,
    pay_as_you_go: bool = False,
) -> Listing:
    """Walk one state's listing newest first looking for the `wanted` jobs (id → creation).

    The walk stops at its end, after `max_pages`, once every wanted job was met, or once it
    has passed the creation time of the oldest wanted job not met yet (newest first, so that
    job is not in this state). With `pay_as_you_go`, it also stops when its pages outnumber the
    wanted jobs it met by more than one: a page that finds nothing is a state call spent.
    Every row met is a valid sighting whatever the order, so nothing here raises for order or
    counts: a wanted job the walk did not meet is simply asked about another way.
    """
    walk = _Walk(default_queue=NO_QUEUE)
    offset = 0
    while walk.pages < max_pages:
        page = await client.list_batches(offset=offset, size=page_size, state=state)
        walk.take(page)
        pending = [created for job_id, created in wanted.items() if job_id not in walk.jobs]
        if not pending or len(page.rows) + page.malformed < page_size:
            break
        if walk.oldest is not None and walk.oldest < min(pending):
            break
        if pay_as_you_go and walk.pages > len(wanted) - len(pending) + 1:
            break
        offset += page_size
    return walk.listing(reached_end=False)


async def fetch_page(
    client: DliClient, *, offset: int, page_size: int, queue_name: str | None
) -> tuple[Listing, int]:
    """One page of the unfiltered listing at `offset`, and how many rows it had."""
    walk = _Walk(default_queue=NO_QUEUE if queue_name is None else queue_name)
    page = await client.list_batches(offset=offset, size=page_size, queue_name=queue_name)
    walk.take(page)
    rows = len(page.rows) + page.malformed
    return walk.listing(reached_end=rows < page_size), rows


def check_total(pages: Sequence[tuple[int | None, int]], distinct: int, duplicates: int) -> None:
    """Raise unless the rows of a finished walk agree with `total`, where `total` means anything.

    `pages` holds (total, rows) per page. Three readings of `total`:
    - absent: only duplicate ids (the list shifted under us) are suspicious;
    - each page's own length (every page's total equals its row count, and some page differs
      from the first): no global count to check against, so it is ignored;
    - a count of every matching job: it must stay the same on every page and equal the
      distinct jobs collected.
    """
    totals = [total for total, _rows in pages]
    if any(total is None for total in totals):
        if duplicates:
            raise ListingIncomplete("the list shifted while paging (duplicate ids, no total)")
        return
    per_page = all(total == rows for total, rows in pages)
    if per_page and len(set(totals)) > 1:
        if duplicates:
            raise ListingIncomplete("the list shifted while paging (duplicate ids)")
        return
    first = totals[0]
    if any(total != first for total in totals):
        raise ListingIncomplete(f"total changed from {first} to {totals[-1]} while paging")
    if distinct != first:
        raise ListingIncomplete(f"collected {distinct} distinct jobs but the API reports {first}")


async def ask_states(
    client: DliClient, jobs: Iterable[Job], *, concurrency: int
) -> dict[str, JobState | None]:
    """Ask `/state` about each job; None when it no longer exists, omitted when unanswered.

    A job whose state call fails for any other reason is left out, so the differ keeps it
    unchanged and the next cycle asks again: no answer is never taken as "gone".
    """
    limit = asyncio.Semaphore(max(1, concurrency))
    answers: dict[str, JobState | None] = {}

    async def ask(job: Job) -> None:
        async with limit:
            try:
                raw = await client.get_state(job.id)
            except DliNotFound:
                answers[job.id] = None
                return
            except DliError as exc:
                log.warning("state confirmation failed", job_id=job.id, error=str(exc))
                return
        state = JobState.parse(raw)
        if state is JobState.UNKNOWN:
            log.warning("state confirmation returned an unknown state", job_id=job.id, raw=raw)
            return
        answers[job.id] = state

    await asyncio.gather(*(ask(job) for job in jobs))
    return answers
