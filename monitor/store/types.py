"""The values and errors of the store contract: what every backend hands out and raises.

No I/O and no backend detail here: the rows' meaning is in `monitor.store.contract`, the SQL in
the backends (`monitor.store.sqlite`). Also the words every backend's `state check` report
shares (`describe_version`, `count_lines`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from monitor.models import Event, Job
from monitor.models_explain import PlannedSink, RoutingRecord

PENDING = "pending"
"""An outbox row still to be sent (or retried)."""
DELIVERED = "delivered"
"""An outbox row whose event the sink accepted; final."""
FAILED = "failed"
"""An outbox row given up on (permanent error, too old, sink removed); final."""

Routing = Callable[[Event], Iterable[tuple[str, datetime]]]
"""Asked, inside `commit_poll`'s transaction, for (sink, first attempt time) per NEW event.

Pure and synchronous (`monitor.routing.RoutingPass`): it may not touch the store. When what it
returns is a `monitor.models_explain.RoutingRecord` (which iterates as its plan), the store
keeps that record as the event's decision; otherwise it keeps the bare plan."""


class StoreError(Exception):
    """The store cannot be used (newer schema, not a database, unreadable, unreachable)."""


class StoreWriteError(StoreError):
    """A write failed (disk full, read-only, I/O error, lost connection) and was rolled back."""


class StoreFencedOff(StoreWriteError):
    """This process no longer holds the leader lease, so the write (or claim) was refused.

    Raised by a fenced backend (PostgreSQL with a lease) when the fence check made inside the
    write's own transaction fails, or when this process knows it is not the leader; nothing of
    the write was done. A deposed leader stops polling and delivering when it sees this.
    """


@dataclass(frozen=True, slots=True)
class TargetState:
    """What the store knows about one target: its last snapshot and when the baseline was set."""

    jobs: dict[str, Job]
    baseline_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """One pending outbox row: an event still to be sent to one sink."""

    event: Event
    sink: str
    attempts: int
    created_at: datetime


def newest_runs(
    first_seen: dict[tuple[str, str], datetime],
    created: dict[tuple[str, str], datetime | None],
    limit: int,
) -> list[tuple[str, str]]:
    """The `limit` newest (target, job id) keys of `first_seen` and `created`, newest first: by
    creation time, else by first sighting (`TrailStore.jobs_named`'s order)."""

    def when(key: tuple[str, str]) -> float:
        moment = created.get(key) or first_seen.get(key)
        return moment.timestamp() if moment is not None else 0.0

    keys = set(first_seen) | set(created)
    return sorted(keys, key=lambda key: (when(key), key[1], key[0]), reverse=True)[:limit]


def earliest_per_sink(plan: Iterable[tuple[str, datetime]]) -> dict[str, datetime]:
    """The earliest first-attempt time per sink of a routing plan, in the order sinks first
    appear (a sink named twice keeps its earliest time)."""
    earliest: dict[str, datetime] = {}
    for sink, at in plan:
        if sink not in earliest or at < earliest[sink]:
            earliest[sink] = at
    return earliest


def plan_record(plan: Iterable[tuple[str, datetime]]) -> RoutingRecord:
    """What a backend keeps as an event's decision: the router's `RoutingRecord`, or the bare
    plan (sinks given directly) as one."""
    if isinstance(plan, RoutingRecord):
        return plan
    return RoutingRecord(plan=tuple(PlannedSink(sink, at) for sink, at in plan))


@dataclass(frozen=True, slots=True)
class Mark:
    """What an outbox mark records for each row it changes (backends only): the attempt's
    outcome, time and answer, and the digest message the rows went in."""

    outcome: str
    now: datetime | None
    """When the attempt was made (None: the caller did not say)."""
    answer: str = ""
    kind: str = ""
    digest: int | None = None
    """The id of the digest message the rows went in (None: each in its own message)."""

    def sent_in(self, digest: int | None) -> Mark:
        """The same mark for rows that went in digest `digest`."""
        return Mark(self.outcome, self.now, self.answer, self.kind, digest)


def describe_version(version: int | None, current: int) -> str:
    """A stored schema version as `state check` prints it: what this release (which writes
    `current`) will do with it. None: the state could not be read."""
    if version is None:
        return "unknown (not readable)"
    if version == 0:
        return f"0 (empty: the version-{current} schema will be created on the next start)"
    if 0 < version < current:
        return f"{version} (older than {current}: will be migrated on the next start)"
    if version == current:
        return f"{version} (same as this release: ok)"
    return f"{version} (this release knows up to {current}: refused, needs a newer monitor)"


def count_lines(rows: dict[str, int], pending: dict[str, int]) -> list[str]:
    """Rows per table and pending outbox rows per sink, as `state check` prints them."""
    return [
        "rows per table:" + ("" if rows else " unknown"),
        *(f"  {table}: {count}" for table, count in rows.items()),
        "pending outbox rows per sink:" + ("" if pending else " none"),
        *(f"  {sink}: {count}" for sink, count in pending.items()),
    ]
