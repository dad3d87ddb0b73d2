"""The records `dli-monitor explain` is built from: what the store keeps of each job's path.

Domain values like those in `monitor.models` (kept apart only to keep that module short): the
store persists them (tables `job_sightings`, `decisions`, `attempts`, `digests`) and hands them
back; the committer makes the `Sighting`s, the router the `RoutingRecord` of each new event, and
the outbox marks of the dispatcher the `Attempt`s. Nothing here does I/O or reads a clock.

What does not live here: reading them back into an answer (`monitor.explain`), their JSON shape
in the store (`monitor.codec`), the SQL (`monitor.store`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from monitor.models import Event, Job, JobState

DELIVERED = "delivered"
RETRY = "retry"
FAILED = "failed"
DEFERRED = "deferred"
ATTEMPT_OUTCOMES = (DELIVERED, RETRY, FAILED, DEFERRED)
"""What one row of `attempts` says happened: sent, to be retried, given up, or held back
(a rate budget's next free slot or a vendor's pause; not a send)."""


@dataclass(frozen=True, slots=True)
class Sighting:
    """A job seen in a state for the first time: a new job, or a change of its state.

    Only changes are kept (not every cycle that saw the job), so a job has a handful.
    """

    target: str
    job_id: str
    state: JobState
    seen_at: datetime
    """When the cycle that first saw the job in this state ran (its `now`)."""
    job_name: str = ""
    queue: str = ""
    cycle_id: str = ""
    """The cycle's id, as its log lines carry it (`cycle_id`)."""
    baseline: bool = False
    """Recorded silently as part of the target's baseline: nothing was reported about it."""


@dataclass(frozen=True, slots=True)
class PlannedSink:
    """One sink an event was routed to, from when, and why then."""

    sink: str
    at: datetime
    """The first attempt's time: the commit's, or the end of a route's quiet hours."""
    route: int | None = None
    """The index in `routes:` of the route that sends it there; None: the default sinks."""
    quiet_until: datetime | None = None
    """Held by that route's quiet hours until then (None: not held)."""


@dataclass(frozen=True, slots=True)
class SilenceNote:
    """The silence that muted an event, as it stood when the event was routed."""

    id: int
    until: datetime
    what: str = ""
    """The silence's match, e.g. `job_name=adhoc_.* queue=etl`, and its comment."""


@dataclass(frozen=True, slots=True)
class RoutingRecord:
    """Why an event goes where it goes: the routing decision stored with the event.

    Iterating it yields the plan as (sink, first attempt time) pairs, so a router may hand it
    to `Store.commit_poll` as its `Routing` result; the store then keeps it in `decisions`.
    """

    plan: tuple[PlannedSink, ...] = ()
    matched: tuple[str, ...] = ()
    """The matched routes, each as `#<index> <its match>`; empty when none matched."""
    default: bool = False
    """No route matched, so the default sinks got the event."""
    silence: SilenceNote | None = None
    unrouted: str = ""
    """Why no sink gets the event although no silence applied (empty otherwise)."""
    rule: str = ""
    """What the lifecycle rules found, e.g. `stuck: in starting for 17m (limit 15m)`."""

    def __iter__(self) -> Iterator[tuple[str, datetime]]:
        """The plan as (sink, first attempt time) pairs."""
        return iter([(planned.sink, planned.at) for planned in self.plan])


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt of one event to one sink (or a deferral, which is not a send)."""

    event_id: str
    sink: str
    attempt: int
    """The row's sends so far, this one included (a deferral: the sends made before it)."""
    at: datetime | None
    """When it happened (None: not recorded)."""
    outcome: str
    """One of `ATTEMPT_OUTCOMES`."""
    answer: str = ""
    """The vendor's answer or why it failed, already scrubbed of secrets (`safe_text`)."""
    kind: str = ""
    """The failure kind (`monitor.models.SINK_FAILURE_KINDS`); empty for a success."""
    next_attempt_at: datetime | None = None
    """For a retry or a deferral: not tried again before then."""
    digest_id: int | None = None
    """The digest the event went in (None: a message of its own)."""
    digest_size: int = 0
    """How many events that digest carried."""


@dataclass(frozen=True, slots=True)
class OutboxState:
    """Where one (event, sink) outbox row stands now."""

    sink: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str = ""
    done_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored event with its routing decision, its outbox rows and its attempts."""

    event: Event
    created_at: datetime
    cycle_id: str = ""
    routing: RoutingRecord | None = None
    """None for an event stored before decisions were recorded."""
    outbox: tuple[OutboxState, ...] = ()
    attempts: tuple[Attempt, ...] = ()
    """Oldest first."""


@dataclass(frozen=True, slots=True)
class JobTrail:
    """Everything the store remembers of one job on one target."""

    target: str
    job_id: str
    job: Job | None
    """The stored record (None once it left the snapshot)."""
    baseline_at: datetime | None
    """When the target's baseline was taken (None: the target is unknown)."""
    sightings: tuple[Sighting, ...] = ()
    """Oldest first."""
    events: tuple[EventRecord, ...] = ()
    """In the order they were stored."""

    @property
    def name(self) -> str:
        """The job's name, from its record, its sightings or its events."""
        if self.job is not None and self.job.name:
            return self.job.name
        names = [s.job_name for s in self.sightings] + [e.event.job.name for e in self.events]
        return next((name for name in names if name), "")
