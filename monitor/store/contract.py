"""The store contract: one `Protocol` per concern, and `Store`, which is all of them.

Here: `SnapshotStore` (with THE commit of a poll), `RuleMemoryStore`, `SilenceStore`,
`TrailStore` and `Store`; the delivery side, `Outbox` and `SendLog`, is in
`monitor.store.contract_delivery` (re-exported here). What this docstring says holds for both.

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

from monitor.models import Event, HistoryUpdate, Job, PollMark, RuleMemory
from monitor.models_explain import EventRecord, JobTrail, Sighting
from monitor.models_silence import Silence
from monitor.store.contract_delivery import Outbox, SendLog
from monitor.store.types import Routing, TargetState

__all__ = [
    "Outbox",
    "RuleMemoryStore",
    "SendLog",
    "SilenceStore",
    "SnapshotStore",
    "Store",
    "TrailStore",
]


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
