"""Sorted indexes of the listed jobs, so one page costs about the same at 1,000 jobs as at 100,000.

`ListingIndex` keeps every listed job's sort key overall, per queue, per normalised state and
per (queue, state); `World.page` slices the list that matches its filters. It holds keys only:
the jobs themselves, hiding, and the filters that must scan (name, owner) live in `world`.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable

ListingKey = tuple[int, int, str]
"""A listed job's sort key, (create ms, add sequence, id): ascending means oldest first."""


def normalised_state(state: str) -> str:
    """A raw state as the `state` filter compares it: stripped and lower-cased."""
    return state.strip().lower()


class ListingIndex:
    """Sorted keys of the listed jobs: overall, per queue, per state and per (queue, state).

    Every list is ascending (oldest first), so jobs added in time order are appended at the end.
    """

    def __init__(self) -> None:
        self.all: list[ListingKey] = []
        self.by_queue: dict[str, list[ListingKey]] = {}
        self.by_state: dict[str, list[ListingKey]] = {}
        self.by_queue_state: dict[tuple[str, str], list[ListingKey]] = {}
        self.entries: dict[str, tuple[ListingKey, str, str]] = {}

    def add(self, key: ListingKey, queue: str, state: str) -> None:
        """Index one job under its queue and normalised state."""
        self.entries[key[2]] = (key, queue, state)
        for keys in self._lists(queue, state, create=True):
            insort(keys, key)

    def discard(self, job_id: str) -> None:
        """Drop a job from every index it is in (nothing happens when it is in none)."""
        entry = self.entries.pop(job_id, None)
        if entry is None:
            return
        key, queue, state = entry
        for keys in self._lists(queue, state, create=False):
            del keys[bisect_left(keys, key)]
        if not self.by_queue[queue]:
            del self.by_queue[queue]
        if not self.by_state[state]:
            del self.by_state[state]
        if not self.by_queue_state[queue, state]:
            del self.by_queue_state[queue, state]

    def lookup(self, queue: str | None, state: str | None) -> list[ListingKey]:
        """The sorted keys of the listed jobs in `queue` and `state` (None: any)."""
        if queue is not None and state is not None:
            return self.by_queue_state.get((queue, state), [])
        if queue is not None:
            return self.by_queue.get(queue, [])
        if state is not None:
            return self.by_state.get(state, [])
        return self.all

    def _lists(self, queue: str, state: str, *, create: bool) -> Iterable[list[ListingKey]]:
        if create:
            yield self.all
            yield self.by_queue.setdefault(queue, [])
            yield self.by_state.setdefault(state, [])
            yield self.by_queue_state.setdefault((queue, state), [])
        else:
            yield self.all
            yield self.by_queue[queue]
            yield self.by_state[state]
            yield self.by_queue_state[queue, state]
