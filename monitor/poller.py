"""The poller: one complete, consistent listing of a target, or an exception.

`fetch_listing` pages through `GET /batches` with `from`/`size` until a short page,
de-duplicates by job id, and checks the result against `total`: if `total` moved while we
paged, or the ids we collected do not add up to it, the listing is incomplete and raises
`ListingIncomplete` instead of returning something partial (a partial listing would make
jobs look vanished). `confirm_missing` asks `/state` about jobs that left the listing.
No diffing and no persistence here; the cycle decides what a listing means.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from monitor.dli.client import DliClient
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


@dataclass(frozen=True, slots=True)
class Listing:
    """Every job of one target as of one complete listing."""

    jobs: dict[str, Job]
    pages: int
    malformed: int = 0
    duplicates: int = 0
    unknown_states: frozenset[str] = field(default_factory=frozenset)


async def fetch_listing(client: DliClient, *, target: str, page_size: int) -> Listing:
    """Page through one target (a queue, or `*` for the whole project) until a short page."""
    queue_name = None if target == ALL_QUEUES else target
    default_queue = NO_QUEUE if queue_name is None else queue_name
    jobs: dict[str, Job] = {}
    malformed = duplicates = rows_seen = pages = 0
    unknown: set[str] = set()
    first_total: int | None = None
    offset = 0
    while True:
        if pages >= MAX_PAGES:
            raise ListingIncomplete(f"more than {MAX_PAGES} pages")
        page = await client.list_batches(offset=offset, size=page_size, queue_name=queue_name)
        pages += 1
        if pages == 1:
            first_total = page.total
        elif page.total != first_total:
            raise ListingIncomplete(
                f"total changed from {first_total} to {page.total} while paging"
            )
        malformed += page.malformed
        rows_seen += len(page.rows) + page.malformed
        for row in page.rows:
            try:
                job = parse_job(row, default_queue=default_queue)
            except MalformedJob:
                malformed += 1
                continue
            if job.id in jobs:
                duplicates += 1
                continue
            if job.state is JobState.UNKNOWN:
                unknown.add(job.raw_state)
            jobs[job.id] = job
        if len(page.rows) + page.malformed < page_size:
            break
        offset += page_size
    _check_complete(first_total, len(jobs), malformed, duplicates)
    return Listing(jobs, pages, malformed, duplicates, frozenset(unknown))


def _check_complete(total: int | None, unique: int, malformed: int, duplicates: int) -> None:
    """Raise unless the collected rows account for exactly `total` jobs."""
    if total is None:
        if duplicates:
            raise ListingIncomplete("the list shifted while paging (duplicate ids, no total)")
        return
    if unique + malformed != total:
        raise ListingIncomplete(
            f"collected {unique + malformed} distinct jobs but the API reports {total}"
        )


async def confirm_missing(
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
