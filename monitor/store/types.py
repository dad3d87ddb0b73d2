"""The values and errors of the store contract: what every backend hands out and raises.

No I/O and no backend detail here: the rows' meaning is in `monitor.store.contract`, the SQL in
the backends (`monitor.store.sqlite`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from monitor.models import Event, Job

PENDING = "pending"
"""An outbox row still to be sent (or retried)."""
DELIVERED = "delivered"
"""An outbox row whose event the sink accepted; final."""
FAILED = "failed"
"""An outbox row given up on (permanent error, too old, sink removed); final."""

Routing = Callable[[Event], Iterable[tuple[str, datetime]]]
"""Asked, inside `commit_poll`'s transaction, for (sink, first attempt time) per NEW event.

Pure and synchronous (`monitor.routing.RoutingPass`): it may not touch the store."""


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
