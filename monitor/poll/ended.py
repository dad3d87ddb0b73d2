"""Finding out how tracked active jobs ended: the ended listings, then `/state` calls.

A job that left the active listings and was not in the newest-first walk has ended (or
vanished). `EndedFinder.find` follows the planner's split (`plan_ended`): walk the `dead`, then
the `success` listing newest first down to the planned creation time, stopping as soon as
every missing job was met; then one state call for each job still unexplained, as many as the
request budget leaves room for this cycle (the others are asked next cycle, and nothing is said
about them meanwhile).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from datetime import datetime

import structlog

from monitor.dli.client import DliClient
from monitor.dli.errors import DliError
from monitor.models import Job, JobState
from monitor.poll.listing import ask_states, find_in_listing
from monitor.poll.plan import ENDED_STATES, EndedIndex, plan_ended

log = structlog.get_logger(__name__)

PROBE_FROM = 4
"""Missing jobs from which an uncertain plan still tries a pay-as-you-go walk."""


@dataclasses.dataclass
class Ended:
    """What the search found, and what it cost."""

    found: list[Job]
    """Sightings from the ended listings."""
    answers: dict[str, JobState | None]
    """State-call answers (None: the job no longer exists)."""
    postponed: int
    """State calls the budget left for the next cycle."""
    walk_pages: int
    state_calls: int


@dataclasses.dataclass
class EndedFinder:
    """One cycle's search for the jobs that left the active set."""

    client: DliClient
    index: EndedIndex
    limit: asyncio.Semaphore
    page_size: int

    async def find(
        self,
        jobs: Mapping[str, Job],
        *,
        walk: bool,
        room: float,
        now: datetime,
        concurrency: int,
    ) -> Ended:
        """Walk the ended listings as planned, then ask about what is still unexplained.

        A certain plan (every missing job created within the index's coverage, so the counts are
        exact) is followed as it is. Otherwise, when enough jobs are missing (`PROBE_FROM`), the
        listings are walked pay as you go: each page must find a job to earn the next, and a
        listing is left as soon as it has passed the oldest job it could still hold.
        """
        found: list[Job] = []
        pages = 0
        if walk:
            plan = plan_ended(self.index, jobs.values(), self.page_size, now)
            dated = {j.id: j.create_time for j in jobs.values() if j.create_time is not None}
            if plan.certain and plan.floor is not None:
                wanted = {i: t for i, t in dated.items() if t >= plan.floor}
                found, pages = await self._walk(wanted, plan.pages + 1, pay_as_you_go=False)
            elif not plan.certain and len(dated) >= PROBE_FROM:
                found, pages = await self._walk(dated, len(dated), pay_as_you_go=True)
        seen = {job.id for job in found}
        left = [job for job_id, job in jobs.items() if job_id not in seen]
        asked = left if room >= len(left) else left[: max(0, int(room))]
        if len(asked) < len(left):
            log.info("budget short: state calls postponed", asked=len(asked), left=len(left))
        answers = await ask_states(self.client, asked, concurrency=concurrency)
        for job_id, state in answers.items():
            if state is not None:
                self.index.add([dataclasses.replace(jobs[job_id], state=state)])
        return Ended(found, answers, len(left) - len(asked), pages, len(asked))

    async def _walk(
        self, wanted: dict[str, datetime], max_pages: int, *, pay_as_you_go: bool
    ) -> tuple[list[Job], int]:
        """Walk the `dead` then the `success` listing for the wanted jobs."""
        found: list[Job] = []
        pages = 0
        for state in ENDED_STATES:
            try:
                async with self.limit:
                    listing = await find_in_listing(
                        self.client,
                        state=state.value,
                        page_size=self.page_size,
                        wanted=wanted,
                        max_pages=max_pages,
                        pay_as_you_go=pay_as_you_go,
                    )
            except DliError as exc:
                log.info("ended listing failed; asking states instead", error=str(exc))
                break
            pages += listing.pages
            self.index.add(listing.jobs.values())
            found += [job for job_id, job in listing.jobs.items() if job_id in wanted]
            wanted = {i: t for i, t in wanted.items() if i not in listing.jobs}
            if not wanted:
                break
        return found, pages
