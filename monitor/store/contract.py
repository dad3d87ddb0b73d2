"""The store contract: one `Protocol` per concern, and `Store`, which is all of them.

Each concern's docstring is the one place that says what its rows mean and when they change;
a backend (`monitor.store.sqlite`, later PostgreSQL) implements every method with exactly that
meaning, and the contract tests (`tests/store/`) hold every backend to it. Every method that
touches the database is `async`. Times go in and come out timezone-aware (UTC); a naive time is
a `ValueError`. A failed write raises `StoreWriteError` and leaves nothing half-written.

Fencing (PostgreSQL with a leader and standbys): a backend that guards writes with a lease
checks it inside the same transaction as `commit_poll` and as the outbox's state changes, and
raises `StoreWriteError` without writing when this process no longer holds the lease, so a
deposed leader can neither commit a snapshot nor record a delivery.

Targets are named by their key, which the store treats as opaque text: a queue name (or `*`)
for a single `dli:` mapping, `<project>/<queue>` for a project of a `dli:` list
(`monitor.models.ProjectRef.key`). A silence limited to projects keeps its scope in its queue
field as `<project glob>/<queue glob>` (`monitor.models_silence`).

What does not live here: the SQL (the backends), the JSON shape of jobs, events and decisions
(`monitor.codec`), the trail's values (`monitor.models_explain`), delivery policy and retries
(`monitor.dispatch`), routing (`monitor.routing`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Protocol

from monitor.models import Event, HistoryUpdate, Job, Notification, PollMark, RuleMemory
from monitor.models_explain import EventRecord, JobTrail, Sighting
from monitor.models_silence import Silence
from monitor.store.types import Delivery, Routing, TargetState


class SnapshotStore(Protocol):
    """Per-target snapshots, where incremental polling stands, and THE commit of a poll.

    Rows: a *target* row exists once the target's first poll committed (its baseline); it keeps
    the first `baseline_at` forever and the last `polled_at`. A *job* row is the last sighting
    of one job of one target (history included, until the differ removes it). A *poll mark*
    (`PollMark`) says where incremental polling of the target stands. All three change only in
    `commit_poll`, together with the poll's events, outbox rows, decisions, sightings and rule
    memory.
    """

    async def load_target(
        self, target: str, *, ended_since: datetime | None = None
    ) -> TargetState | None:
        """The stored snapshot of a target, or None until its first commit (no baseline yet).

        With `ended_since`, only what incremental polling keeps in memory: every job not in a
        terminal state, and terminal ones whose `state_since` is at or after `ended_since`.
        """
        ...

    async def count_jobs(self, target: str) -> dict[tuple[str, str], int]:
        """Stored jobs of a target per (queue, state)."""
        ...

    async def lookup_jobs(self, target: str, job_ids: Collection[str]) -> dict[str, Job]:
        """The stored records of those of `job_ids` the target knows (history included)."""
        ...

    async def poll_mark(self, target: str) -> PollMark | None:
        """Where incremental polling of a target stands, or None before its first commit.

        A target baselined by full listings (or by an old state file) has no mark yet: its
        high water is then the newest `create_time` stored for it, with no baseline floor.
        """
        ...

    async def targets(self) -> list[str]:
        """Every target that has a baseline, sorted."""
        ...

    async def commit_poll(
        self,
        target: str,
        *,
        upserts: Iterable[Job],
        removals: Iterable[str],
        events: Sequence[Event],
        sinks: Sequence[str] = (),
        now: datetime,
        routing: Routing | None = None,
        history: HistoryUpdate | None = None,
        mark: PollMark | None = None,
        sightings: Sequence[Sighting] = (),
        cycle_id: str = "",
    ) -> list[Event]:
        """Write one poll's outcome in ONE transaction; returns the events that were new.

        All or nothing, so a crash leaves the old state or the new one, never half of each:
        upsert and remove the target's job rows; mark the target baselined (keeping the first
        `baseline_at`, setting `polled_at` to `now`); insert the events (an `event_id` already
        stored is skipped, and left out of the result) and, per new event, one pending outbox
        row per sink, due at `now`. With `routing`, it is asked for (sink, first attempt time)
        per new event instead of `sinks` (a sink named twice keeps its earliest time; no sink =
        recorded, not delivered). Each new event's decision is kept with it (`TrailStore`):
        the `RoutingRecord` the routing returned, else the bare plan, with `cycle_id` and `now`.
        `history` (rule memory), `mark` (the poll mark) and `sightings` are written in the same
        transaction, so a high water never moves past jobs whose sightings were not committed.
        An event or sighting of another target is a `ValueError`; any error rolls everything
        back and is raised.
        """
        ...


class RuleMemoryStore(Protocol):
    """What the lifecycle rules remember per target, read here and written by `commit_poll`.

    Rows: a *history* per (target, job name) — durations of recent successful runs, the
    failure streak and the last outcome — replaced whole when `HistoryUpdate.names` names it.
    A *rule mark* per (target, job id, rule) says that rule fired for the job while it stays in
    the state its `anchor` pins; `marks_cleared` deletes marks before `marks_added` inserts or
    replaces them. Neither is ever deleted otherwise.
    """

    async def load_rule_memory(self, target: str) -> RuleMemory:
        """The lifecycle rules' state of a target: job-name histories and fired-rule marks."""
        ...


class Outbox(Protocol):
    """The events found and the deliveries still owed: at-least-once, walked by the dispatcher.

    Rows: an *event* is stored once per `event_id` (by `commit_poll`) with its creation time,
    in commit order. An *outbox row* per (event, sink) is `pending` until marked `delivered`
    or `failed`, both final: a finished row is never changed again (marking it again is a
    no-op; marking a row that never existed is a `KeyError`). A pending row has `attempts`
    (sends tried), `next_attempt_at` (not due before) and `last_error`. `defer` and
    `release_retries` move `next_attempt_at` without counting an attempt. `prune` deletes old
    events with nothing pending, their outbox rows, decisions and attempts with them.

    Every mark that changes a pending row also records, in its own transaction, one attempt
    per row (`TrailStore`): the outcome, `now`, the `reason` as the vendor's answer, the
    failure `kind`, a retry's `next_attempt_at`, and with `digest` (the digest message the rows
    went in) that digest's id. `reason` texts must already be free of secrets.
    """

    async def due(
        self,
        now: datetime,
        limit: int = 100,
        *,
        exclude_sinks: Collection[str] = (),
        sink: str | None = None,
    ) -> list[Delivery]:
        """Pending rows whose next attempt is at or before `now`, oldest event first (then by
        sink name); `sink` restricts them to that one sink."""
        ...

    async def next_due_at(self) -> datetime | None:
        """When the earliest pending row falls due (None when nothing is pending)."""
        ...

    async def mark_delivered(self, event_id: str, sink: str, now: datetime) -> None:
        """Record a successful send (attempts += 1); a row no longer pending is left alone."""
        ...

    async def mark_retry(
        self,
        event_id: str,
        sink: str,
        *,
        next_attempt_at: datetime,
        reason: str,
        now: datetime | None = None,
        kind: str = "",
    ) -> None:
        """Record a failed attempt to be repeated at `next_attempt_at` (attempts += 1); the
        attempt's time is `now` (None: not recorded)."""
        ...

    async def mark_failed(
        self,
        event_id: str,
        sink: str,
        *,
        reason: str,
        now: datetime,
        attempted: bool = True,
        kind: str = "",
        digest: Notification | None = None,
    ) -> None:
        """Give up on a row for good; `attempted=False` when no send was made (sink removed)."""
        ...

    async def mark_delivered_many(
        self,
        event_ids: Sequence[str],
        sink: str,
        now: datetime,
        *,
        digest: Notification | None = None,
    ) -> None:
        """`mark_delivered` for every row of one message (`digest`: a digest), in one
        transaction."""
        ...

    async def mark_failed_many(
        self,
        event_ids: Sequence[str],
        sink: str,
        *,
        reason: str,
        now: datetime,
        kind: str = "",
        digest: Notification | None = None,
    ) -> None:
        """`mark_failed` for every row of one message, in one transaction."""
        ...

    async def mark_retry_many(
        self,
        retries: Sequence[tuple[str, datetime]],
        sink: str,
        *,
        reason: str,
        now: datetime | None = None,
        kind: str = "",
        digest: Notification | None = None,
    ) -> None:
        """`mark_retry` for (event_id, next_attempt_at) pairs of one sink, in one transaction
        (`digest` needs `now`)."""
        ...

    async def defer(
        self, sink: str, until: datetime, *, now: datetime | None = None, reason: str = ""
    ) -> int:
        """Move every pending row of `sink` due before `until` to `until`; returns how many.

        Not an attempt: `attempts` and `last_error` stay. This is how a rate budget's next free
        slot (or a vendor's pause) is persisted, so a restart does not send early. With `now`,
        each row moved gets a `deferred` attempt at `now` saying `reason`.
        """
        ...

    async def release_retries(self, sink: str, now: datetime) -> int:
        """Make every pending row of `sink` that already failed and waits past `now` due at
        `now`; returns how many. Not an attempt: `attempts` and `last_error` stay."""
        ...

    async def pending_by_sink(self) -> dict[str, int]:
        """How many rows are still pending, per sink (sinks with none are left out)."""
        ...

    async def outbox_summary(self) -> dict[str, tuple[int, datetime | None]]:
        """Per sink with pending rows: (how many, when the oldest pending event was created)."""
        ...

    async def outcome(self, event_id: str, sink: str) -> tuple[str, int, str]:
        """(status, attempts, last_error) of one outbox row; KeyError when there is none."""
        ...

    async def delivered_events(self, sink: str, since: datetime | None) -> list[Event]:
        """The events delivered to `sink` at or after `since` (None: all kept), oldest event
        first: what a sink that keeps state about its receiver replays after a restart."""
        ...

    async def prune(self, *, older_than: datetime) -> int:
        """Delete events created before `older_than` with nothing pending; returns how many."""
        ...


class SendLog(Protocol):
    """When messages went to each sink, so a rate budget survives a restart.

    Rows: one per message sent (a digest is one), (sink, time); recording a send forgets that
    sink's sends older than `keep_s`. Nothing else changes them.
    """

    async def record_send(self, sink: str, at: datetime, *, keep_s: float = 3600.0) -> None:
        """Remember that a message went to `sink` at `at`; forget its sends older than `keep_s`."""
        ...

    async def recent_sends(self, sink: str, since: datetime) -> list[datetime]:
        """The send times of `sink` after `since`, oldest first (to rebuild a rate budget)."""
        ...


class SilenceStore(Protocol):
    """Silences added by operators (`dli-monitor silence`), read by the router at each commit.

    Rows: one per silence, with an id that grows (1, 2, ...) and is never reused. A silence is
    never deleted: expiring it moves its end (and, if it had not started, its start) to `now`,
    so the list keeps what was silenced and when.
    """

    async def add_silence(
        self,
        *,
        job_name: str,
        starts_at: datetime,
        ends_at: datetime,
        queue: str | None = None,
        comment: str = "",
    ) -> Silence:
        """Store a new silence and return it with its id; `SilenceError` when it is invalid
        (nothing is stored then)."""
        ...

    async def list_silences(self) -> list[Silence]:
        """Every stored silence, expired ones included, oldest first."""
        ...

    async def active_silences(self, now: datetime) -> list[Silence]:
        """The silences in force at `now`, oldest first."""
        ...

    async def expire_silence(self, silence_id: int, now: datetime) -> bool:
        """End a silence at `now`; False when it had already ended, KeyError when unknown."""
        ...


class TrailStore(Protocol):
    """What `dli-monitor explain` reads: each job's sightings, each event's decision and attempts.

    Rows: a *sighting* per job and state it was first seen in (a new job or a state change,
    never a cycle that saw nothing new; baseline ones flagged), written by `commit_poll`; a
    *decision* per new event, written with it; an *attempt* per pending outbox row that a mark
    changed or a `defer` with `now` moved; a *digest* per digest message marked, with an id that
    grows (1, 2, ...) and is never reused, naming its sink, time and size. `prune` takes the
    decisions and attempts with their events, then the digests no attempt names, and the
    sightings older than its cut-off of jobs no longer in the snapshot. Nothing else changes
    them.
    """

    async def job_trails(self, job_id: str) -> list[JobTrail]:
        """Everything stored about the job with this id, one trail per target that knows it
        (sorted by target; empty when none does), read as one consistent snapshot."""
        ...

    async def jobs_named(self, name: str, *, limit: int) -> list[tuple[str, str]]:
        """(target, job id) of the newest `limit` jobs called exactly `name`, newest first (by
        creation time, else by first sighting)."""
        ...

    async def recent_events(self, limit: int) -> list[EventRecord]:
        """The newest `limit` events of every target, newest first (in commit order), each with
        its decision, outbox rows and attempts, read as one consistent snapshot (the status
        page's "recent events")."""
        ...


class Store(SnapshotStore, RuleMemoryStore, Outbox, SendLog, SilenceStore, TrailStore, Protocol):
    """Every concern of the monitor's state behind one connection (or pool), and `close`."""

    async def close(self) -> None:
        """Release the connection; what was committed is already durable. Closing twice is
        harmless; no other method may be called after it."""
        ...
