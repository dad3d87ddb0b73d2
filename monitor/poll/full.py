"""Full polling: every job of a target in one complete listing, retried when it shifts.

The way every cycle polled before incremental polling, kept as `poll.mode: full` and as the
fallback an incremental cycle takes when the newest-first order does not hold. Tracked active
jobs missing from the complete listing are confirmed with `/state` before anything is said.
"""

from __future__ import annotations

import structlog

from monitor.diff import find_missing
from monitor.dli.client import DliClient
from monitor.models import PollMark, Snapshot
from monitor.poll.listing import Listing, ListingIncomplete, ask_states, fetch_listing
from monitor.poll.observation import Observation

log = structlog.get_logger(__name__)


async def observe_full(
    client: DliClient,
    target: str,
    previous: Snapshot | None,
    mark: PollMark | None,
    *,
    page_size: int,
    attempts: int,
    concurrency: int,
) -> Observation:
    """A complete listing of the target and the answers about jobs that left it."""
    listing = await list_consistently(client, target, page_size=page_size, attempts=attempts)
    missing = find_missing(previous, listing.jobs)
    confirmed = await ask_states(client, missing, concurrency=concurrency)
    waters = [w for w in (listing.newest, mark.high_water if mark else None) if w is not None]
    observation = Observation(
        confirmed=confirmed,
        complete=True,
        mark=PollMark(
            high_water=max(waters, default=None),
            baseline_floor=mark.baseline_floor if mark is not None else None,
        ),
    )
    observation.take(listing, lambda _job: True)
    return observation


async def list_consistently(
    client: DliClient, target: str, *, page_size: int, attempts: int
) -> Listing:
    """A complete listing, retried a few times when the list shifts under us."""
    attempts = max(1, attempts)
    for attempt in range(1, attempts + 1):
        try:
            return await fetch_listing(client, target=target, page_size=page_size)
        except ListingIncomplete as exc:
            if attempt == attempts:
                raise
            log.info("listing inconsistent; listing again", attempt=attempt, reason=str(exc))
    raise AssertionError("unreachable")
