"""What one cycle learned about one target: the `Observation` the cycle diffs and commits.

Both ways of polling produce it: a full listing (`complete`, every job of the target) and an
incremental look (`monitor.poll.incremental`: only what the planned listings showed). Of two
sightings of one job, the one with the later update wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.models import Job, JobState, PollMark
from monitor.poll.listing import Listing


@dataclass
class Observation:
    """What one cycle learned about one target."""

    sightings: dict[str, Job] = field(default_factory=dict)
    confirmed: dict[str, JobState | None] = field(default_factory=dict)
    complete: bool = False
    """True when `sightings` holds every job of the target (a full listing)."""
    pages: int = 0
    malformed: int = 0
    unknown_states: set[str] = field(default_factory=set)
    mark: PollMark | None = None
    reconciled: set[str] = field(default_factory=set)
    """Ids whose only sighting this cycle came from the reconciliation walk."""
    fallback: str = ""
    """Why this target must be listed in full this cycle ('' when it need not)."""
    detail: str = ""
    """What exactly went wrong, for the log line of a fallback."""

    def see(self, job: Job) -> None:
        """Add one sighting; of two sightings of a job, the later state wins."""
        before = self.sightings.get(job.id)
        if before is None or _rank(job) >= _rank(before):
            self.sightings[job.id] = job

    def take(self, listing: Listing, keep: Callable[[Job], bool]) -> None:
        """Add a listing's jobs that belong to this target, and its counts."""
        self.pages += listing.pages
        self.malformed += listing.malformed
        self.unknown_states |= listing.unknown_states
        for job in listing.jobs.values():
            if keep(job):
                self.see(job)


def _rank(job: Job) -> tuple[float, bool]:
    """Later update first, then an ended state over an active one."""
    updated = job.update_time.timestamp() if job.update_time else 0.0
    return (updated, job.state.is_terminal)
