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
from monitor.poll.plan import ENDED_STATES, EndedIndex, EndedPlan, plan_ended

log = structlog.get_logger(__name__)


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
        """Walk the ended listings as planned, then ask about what is still unexplained."""
        found: list[Job] = []
        pages = 0
        if walk:
            plan = plan_ended(self.index, jobs.values(), self.page_size, now)
            if plan.floor is not None:
                found, pages = await self._walk(plan, set(jobs))
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

    async def _walk(self, plan: EndedPlan, wanted: set[str]) -> tuple[list[Job], int]:
        """Walk the `dead` then the `success` listing for the wanted jobs, as planned."""
        assert plan.floor is not None
        found: list[Job] = []
        pages = 0
        for state in ENDED_STATES:
            try:
                async with self.limit:
                    listing = await find_in_listing(
                        self.client,
                        state=state.value,
                        page_size=self.page_size,
                        floor=plan.floor,
                        wanted=wanted,
                        max_pages=plan.pages + 1,
                    )
            except DliError as exc:
                log.info("ended listing failed; asking states instead", error=str(exc))
                break
            pages += listing.pages
            self.index.add(listing.jobs.values())
            found += [job for job_id, job in listing.jobs.items() if job_id in wanted]
            wanted -= listing.jobs.keys()
            if not wanted:
                break
        return found, pages
