"""The listings every incremental cycle makes, per unit: the newest-first walk and the active
listings of the project (queue None) or of one queue.

`UnitLister.list` runs them concurrently (the active listings of one unit one after another, in
the order jobs move through the states), retries a listing that shifted under paging, and puts
what came back (or what failed) on each `Unit`. What the results mean is
`monitor.poll.incremental`'s business.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import structlog

from monitor.dli.client import DliClient
from monitor.dli.errors import DliAuthError
from monitor.models import PollMark
from monitor.poll.listing import Listing, ListingIncomplete, OrderNotHonoured, fetch_listing
from monitor.poll.plan import ACTIVE_STATES, Planner

log = structlog.get_logger(__name__)

FIRST_PAGE_ONLY = datetime.max.replace(tzinfo=UTC)
"""A floor no row reaches: a baseline reads one page of the newest-first listing."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class IncrementalOptions:
    """The knobs of incremental polling."""

    targets: tuple[str, ...]
    page_size: int = 100
    overlap_s: float = 10.0
    concurrency: int = 4
    listing_attempts: int = 3
    """Tries for a consistent active listing: jobs change state while it is paged."""


@dataclass
class Unit:
    """One scope of listings: the project (queue None) or one queue, and what it returned."""

    queue: str | None
    targets: tuple[str, ...]
    active: list[Listing] = field(default_factory=list)
    new: Listing | None = None
    error: BaseException | None = None
    high_water: datetime | None = None
    """The oldest high water of the unit's targets before this cycle's walk."""


@dataclass
class UnitLister:
    """Makes the listings of a cycle's units."""

    client: DliClient
    options: IncrementalOptions
    planner: Planner
    limit: asyncio.Semaphore

    async def run(self, units: Sequence[Unit], marks: Mapping[str, PollMark | None]) -> None:
        """Every newest-first walk and every unit's active listings, concurrently.

        The first walk goes alone: when it fails on authentication nothing else is sent, so a
        wrong key costs one rejected request per cycle, not one per listing (the gateway locks
        a key out after five).
        """
        calls: list[tuple[Unit, str, Awaitable[list[Listing]]]] = []
        for unit in units:
            floor = self._floor([marks.get(t) for t in unit.targets])
            if floor is not FIRST_PAGE_ONLY:
                unit.high_water = floor + timedelta(seconds=self.options.overlap_s)
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
        size = self.options.page_size
        walk = await self._consistent(
            lambda: fetch_listing(self.client, queue_name=queue, page_size=size, floor=floor),
            "newest-first walk",
        )
        return [walk]

    async def _active_in_order(self, queue: str | None) -> list[Listing]:
        """The active listings one after another, in the order jobs move through the states.

        A job that moves on between two listings (`starting` → `running`, `running` →
        `recovering`) is then still met by the later one, instead of slipping between them
        and costing a state call. Each listing asks for the pages it had last time at once.
        """
        listings = []
        for state in ACTIVE_STATES:
            listings.append(
                await self._consistent(
                    functools.partial(
                        fetch_listing,
                        self.client,
                        queue_name=queue,
                        state=state.value,
                        page_size=self.options.page_size,
                        ahead=self.planner.expected_pages(queue, state),
                    ),
                    f"{state} listing",
                )
            )
        return listings

    async def _consistent(self, make: Callable[[], Awaitable[Listing]], what: str) -> Listing:
        """A listing retried (up to `listing_attempts`) while it shifts under paging.

        Jobs start and end while a listing is paged, so a `total` that moves is expected now
        and then; a listing out of order is not retried (the cycle falls back instead).
        """
        attempts = max(1, self.options.listing_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return await make()
            except OrderNotHonoured:
                raise
            except ListingIncomplete as exc:
                if attempt >= attempts:
                    raise
                log.info("listing shifted; listing again", listing=what, reason=str(exc))
        raise AssertionError("unreachable")

    def _floor(self, marks: Sequence[PollMark | None]) -> datetime:
        """Where the newest-first walk may stop: the oldest high water less the overlap."""
        waters = [m.high_water for m in marks if m is not None and m.high_water is not None]
        if not waters:
            return FIRST_PAGE_ONLY
        return min(waters) - timedelta(seconds=self.options.overlap_s)

    async def _limited(self, call: Awaitable[T]) -> T:
        async with self.limit:
            return await call


def _discard(call: Awaitable[list[Listing]]) -> None:
    """Close a listing coroutine that will never be awaited."""
    if isinstance(call, Coroutine):
        call.close()
