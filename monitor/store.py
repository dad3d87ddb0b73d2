"""The SQLite store: per-target job snapshots, the events found, and the delivery outbox.

One file (or `:memory:`), stdlib `sqlite3`, WAL journal and `synchronous=FULL`. The central
promise is `Store.commit_poll`: the new snapshot rows, the "baseline done" mark, the events and
one outbox row per (event, sink) are written in ONE transaction, so a crash leaves either the
old state or the new one, never half of each. Event ids are primary keys: an event derived a
second time (retried page, restart) is silently ignored. The dispatcher then walks the outbox
with `due` and records outcomes with the `mark_*` methods (`*_many` for a digest). Rate
budgets survive a restart through `defer` (a row knows when it may next be tried) and the
`sends` table (`record_send` / `recent_sends`). The lifecycle rules' state (job-name histories
and fired-rule marks) is read with `load_rule_memory` and written by `commit_poll(history=...)`.

The API is synchronous: writes take milliseconds and happen on the event loop's thread.
What lives elsewhere: the JSON shape of jobs and events (`monitor.codec`), delivery policy and
retries (`monitor.dispatch`), and the path of the file (the app, from config).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.codec import (
    event_from_dict,
    event_to_dict,
    format_time,
    job_from_dict,
    job_to_dict,
    parse_time,
)
from monitor.models import (
    Event,
    HistoryUpdate,
    Job,
    JobState,
    NameHistory,
    PollMark,
    RuleMark,
    RuleMemory,
)
from monitor.silences import Silence
from monitor.store_file import SCHEMA_VERSION, StoreError, StoreWriteError, open_state_file

__all__ = ["SCHEMA_VERSION", "Delivery", "Store", "StoreError", "StoreWriteError", "TargetState"]
"""`SCHEMA_VERSION` is stored in `PRAGMA user_version`: an older file is migrated on open
(`monitor.store_migrations`), a newer, corrupt or non-SQLite file is refused with `StoreError`
and left untouched (`monitor.store_file`)."""

_TERMINAL = tuple(state.value for state in JobState if state.is_terminal)

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


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


def _stamp(moment: datetime) -> str:
    """A fixed-width UTC timestamp, so that string order is time order in SQL."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: the store only accepts timezone-aware times")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _unstamp(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


class Store:
    """Snapshots, events and outbox in one SQLite file; every write is one transaction."""

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        """Wrap an open connection whose schema is in place; use `Store.open` instead."""
        self._db = connection
        self._path = path

    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open the state file (created private to this user), set WAL, migrate it to this version.

        A missing file is created 0600 in a directory created 0700; an existing file keeps its
        mode. A file that is not SQLite, is corrupt or is from a newer release is refused with
        `StoreError` before anything is written to it.
        """
        name = str(path)
        connection = open_state_file(name)
        return cls(connection, name)

    def close(self) -> None:
        """Close the file; committed data is already durable."""
        self._db.close()

    def __repr__(self) -> str:
        return f"Store({self._path!r})"

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK and re-raise on any error."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # full disk, read-only file, I/O error, lock
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreWriteError(f"state file {self._path}: {exc}") from exc

    # -- snapshots -----------------------------------------------------------------------------

    def load_target(
        self, target: str, *, ended_since: datetime | None = None
    ) -> TargetState | None:
        """The stored snapshot of a target, or None until its first commit (no baseline yet).

        With `ended_since`, only what incremental polling keeps in memory: every job not in a
        terminal state, and terminal ones that reached it at or after `ended_since`.
        """
        row = self._db.execute(
            "SELECT baseline_at FROM targets WHERE target = ?", (target,)
        ).fetchone()
        if row is None:
            return None
        query, params = "SELECT job_id, data FROM jobs WHERE target = ?", [target]
        if ended_since is not None:
            marks = ", ".join("?" for _ in _TERMINAL)
            # state_since strings may lack a fraction, so the SQL bound is a second early and
            # the exact cut is made below.
            query += (
                f" AND (json_extract(data, '$.state') NOT IN ({marks})"
                " OR json_extract(data, '$.state_since') >= ?)"
            )
            params += [*_TERMINAL, format_time(ended_since - timedelta(seconds=1))]
        jobs: dict[str, Job] = {}
        for job_id, data in self._db.execute(query, params):
            job = job_from_dict(json.loads(data))
            if ended_since is not None and job.state.is_terminal and not _since(job, ended_since):
                continue
            jobs[job_id] = job
        return TargetState(jobs=jobs, baseline_at=_unstamp(row[0]))

    def count_jobs(self, target: str) -> dict[tuple[str, str], int]:
        """Stored jobs of a target per (queue, state)."""
        rows = self._db.execute(
            "SELECT json_extract(data, '$.queue'), json_extract(data, '$.state'), COUNT(*)"
            " FROM jobs WHERE target = ? GROUP BY 1, 2",
            (target,),
        )
        return {(str(queue), str(state)): int(count) for queue, state, count in rows}

    def lookup_jobs(self, target: str, job_ids: Collection[str]) -> dict[str, Job]:
        """The stored records of those of `job_ids` the target knows (history included)."""
        found: dict[str, Job] = {}
        ids = list(job_ids)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            for job_id, data in self._db.execute(
                f"SELECT job_id, data FROM jobs WHERE target = ? AND job_id IN ({marks})",
                (target, *chunk),
            ):
                found[job_id] = job_from_dict(json.loads(data))
        return found

    def poll_mark(self, target: str) -> PollMark | None:
        """Where incremental polling of a target stands, or None before its first commit.

        A target baselined by full listings (or by a version-1 file) has no row yet: its high
        water is then the newest `create_time` stored for it, and it has no baseline floor
        (full listings stored every job, so any unknown job is news).
        """
        row = self._db.execute(
            "SELECT high_water, baseline_floor FROM poll_marks WHERE target = ?", (target,)
        ).fetchone()
        if row is not None:
            return PollMark(
                high_water=parse_time(row[0]) if row[0] else None,
                baseline_floor=parse_time(row[1]) if row[1] else None,
            )
        if self._db.execute("SELECT 1 FROM targets WHERE target = ?", (target,)).fetchone():
            created = [
                parse_time(text)
                for (text,) in self._db.execute(
                    "SELECT json_extract(data, '$.create_time') FROM jobs"
                    " WHERE target = ? AND json_extract(data, '$.create_time') IS NOT NULL",
                    (target,),
                )
            ]
            return PollMark(high_water=max(created, default=None), baseline_floor=None)
        return None

    def targets(self) -> list[str]:
        """Every target that has a baseline, sorted."""
        return [row[0] for row in self._db.execute("SELECT target FROM targets ORDER BY target")]

    def commit_poll(
        self,
        target: str,
        *,
        upserts: Iterable[Job],
        removals: Iterable[str],
        events: Sequence[Event],
        sinks: Sequence[str] = (),
        now: datetime,
        routing: Callable[[Event], Iterable[tuple[str, datetime]]] | None = None,
        history: HistoryUpdate | None = None,
        mark: PollMark | None = None,
    ) -> list[Event]:
        """Write one poll's outcome atomically; returns the events that were new (not duplicates).

        In one transaction: upsert and remove the target's snapshot rows, mark the target
        baselined (keeping the first `baseline_at`), insert the events (a known `event_id` is
        skipped) and one pending outbox row per (new event, sink), due at `now`. With
        `routing`, it is asked for (sink, first attempt time) per new event instead of `sinks`
        (a sink named twice keeps its earliest time; no sink = recorded, not delivered).
        `history` (the lifecycle rules' job-name histories and fired-rule marks) is written in
        the same transaction, and so is `mark` (where incremental polling stands), so a high
        water never moves past jobs whose sightings were not committed. Any error rolls
        everything back and is raised.
        """
        stamp = _stamp(now)
        inserted: list[Event] = []
        with self._transaction() as db:
            db.execute(
                "INSERT INTO targets (target, baseline_at, polled_at) VALUES (?, ?, ?)"
                " ON CONFLICT (target) DO UPDATE SET polled_at = excluded.polled_at",
                (target, stamp, stamp),
            )
            db.executemany(
                "INSERT INTO jobs (target, job_id, data) VALUES (?, ?, ?)"
                " ON CONFLICT (target, job_id) DO UPDATE SET data = excluded.data",
                ((target, job.id, json.dumps(job_to_dict(job))) for job in upserts),
            )
            db.executemany(
                "DELETE FROM jobs WHERE target = ? AND job_id = ?",
                ((target, job_id) for job_id in removals),
            )
            for event in events:
                if event.target != target:
                    raise ValueError(
                        f"event {event.event_id} belongs to target {event.target!r}, not {target!r}"
                    )
                cursor = db.execute(
                    "INSERT INTO events (event_id, target, data, created_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (event_id) DO NOTHING",
                    (event.event_id, target, json.dumps(event_to_dict(event)), stamp),
                )
                if cursor.rowcount != 1:
                    continue
                inserted.append(event)
                plan = routing(event) if routing is not None else ((s, now) for s in sinks)
                db.executemany(
                    "INSERT INTO outbox (event_id, sink, next_attempt_at) VALUES (?, ?, ?)",
                    ((event.event_id, sink, _stamp(at)) for sink, at in _earliest(plan).items()),
                )
            if history is not None:
                _write_history(db, target, history)
            if mark is not None:
                _write_mark(db, target, mark)
        return inserted

    def load_rule_memory(self, target: str) -> RuleMemory:
        """The lifecycle rules' state of a target: job-name histories and fired-rule marks."""
        names = {
            name: NameHistory(
                name=name,
                durations_s=tuple(float(d) for d in json.loads(durations)),
                failures=int(failures),
                last_outcome=str(outcome),
            )
            for name, durations, failures, outcome in self._db.execute(
                "SELECT job_name, durations, failures, last_outcome FROM job_history"
                " WHERE target = ?",
                (target,),
            )
        }
        marks = {
            (job_id, rule): RuleMark(
                job_id=job_id, rule=rule, anchor=_unstamp(anchor) if anchor else None
            )
            for job_id, rule, anchor in self._db.execute(
                "SELECT job_id, rule, anchor FROM rule_marks WHERE target = ?", (target,)
            )
        }
        return RuleMemory(names=names, marks=marks)

    # -- outbox --------------------------------------------------------------------------------

    def due(
        self,
        now: datetime,
        limit: int = 100,
        *,
        exclude_sinks: Collection[str] = (),
        sink: str | None = None,
    ) -> list[Delivery]:
        """Pending rows whose next attempt is at or before `now`, oldest event first.

        `sink` restricts the rows to that one sink.
        """
        skip = sorted(set(exclude_sinks))
        marks = ", ".join("?" for _ in skip)
        where = f" AND o.sink NOT IN ({marks})" if skip else ""
        only: tuple[str, ...] = ()
        if sink is not None:
            where += " AND o.sink = ?"
            only = (sink,)
        rows = self._db.execute(
            "SELECT e.data, o.sink, o.attempts, e.created_at"
            " FROM outbox AS o JOIN events AS e ON e.event_id = o.event_id"
            f" WHERE o.status = 'pending' AND o.next_attempt_at <= ?{where}"
            " ORDER BY e.seq, o.sink LIMIT ?",
            (_stamp(now), *skip, *only, limit),
        ).fetchall()
        return [
            Delivery(
                event=event_from_dict(json.loads(data)),
                sink=sink,
                attempts=attempts,
                created_at=_unstamp(created_at),
            )
            for data, sink, attempts, created_at in rows
        ]

    def next_due_at(self) -> datetime | None:
        """When the earliest pending row falls due (None when nothing is pending)."""
        row = self._db.execute(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'"
        ).fetchone()
        return None if row[0] is None else _unstamp(row[0])

    def mark_delivered(self, event_id: str, sink: str, now: datetime) -> None:
        """Record a successful send (attempts += 1); a row no longer pending is left alone."""
        self._finish(event_id, sink, DELIVERED, "", now, attempted=True)

    def mark_retry(
        self, event_id: str, sink: str, *, next_attempt_at: datetime, reason: str
    ) -> None:
        """Record a failed attempt to be repeated at `next_attempt_at` (attempts += 1)."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
                " WHERE event_id = ? AND sink = ? AND status = 'pending'",
                (_stamp(next_attempt_at), reason, event_id, sink),
            )
            self._check_row(cursor, event_id, sink)

    def mark_failed(
        self, event_id: str, sink: str, *, reason: str, now: datetime, attempted: bool = True
    ) -> None:
        """Give up on a row for good; `attempted=False` when no send was made (sink removed)."""
        self._finish(event_id, sink, FAILED, reason, now, attempted=attempted)

    def mark_delivered_many(self, event_ids: Sequence[str], sink: str, now: datetime) -> None:
        """`mark_delivered` for every row of one digest, in one transaction."""
        self._finish_many(event_ids, sink, DELIVERED, "", now)

    def mark_failed_many(
        self, event_ids: Sequence[str], sink: str, *, reason: str, now: datetime
    ) -> None:
        """`mark_failed` for every row of one digest, in one transaction."""
        self._finish_many(event_ids, sink, FAILED, reason, now)

    def mark_retry_many(
        self, retries: Sequence[tuple[str, datetime]], sink: str, *, reason: str
    ) -> None:
        """`mark_retry` for (event_id, next_attempt_at) pairs of one sink, in one transaction."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
                " WHERE event_id = ? AND sink = ? AND status = 'pending'",
                ((_stamp(at), reason, event_id, sink) for event_id, at in retries),
            )

    def defer(self, sink: str, until: datetime) -> int:
        """Move every pending row of `sink` due before `until` to `until`; returns how many.

        Not an attempt: `attempts` and `last_error` stay. This is how a rate budget's next free
        slot (or a vendor's pause) is persisted, so a restart does not send early.
        """
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE outbox SET next_attempt_at = ?"
                " WHERE sink = ? AND status = 'pending' AND next_attempt_at < ?",
                (_stamp(until), sink, _stamp(until)),
            )
            return cursor.rowcount

    def release_retries(self, sink: str, now: datetime) -> int:
        """Make every pending row of `sink` that already failed and waits later than `now` due
        at `now`; returns how many. Not an attempt: `attempts` and `last_error` stay."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE outbox SET next_attempt_at = ?"
                " WHERE sink = ? AND status = 'pending' AND attempts > 0 AND next_attempt_at > ?",
                (_stamp(now), sink, _stamp(now)),
            )
            return cursor.rowcount

    def record_send(self, sink: str, at: datetime, *, keep_s: float = 3600.0) -> None:
        """Remember that a message went to `sink` at `at`; forget its sends older than `keep_s`."""
        with self._transaction() as db:
            db.execute("INSERT INTO sends (sink, at) VALUES (?, ?)", (sink, _stamp(at)))
            db.execute(
                "DELETE FROM sends WHERE sink = ? AND at < ?",
                (sink, _stamp(at - timedelta(seconds=keep_s))),
            )

    def recent_sends(self, sink: str, since: datetime) -> list[datetime]:
        """The send times of `sink` after `since`, oldest first (to rebuild a rate budget)."""
        rows = self._db.execute(
            "SELECT at FROM sends WHERE sink = ? AND at > ? ORDER BY at", (sink, _stamp(since))
        ).fetchall()
        return [_unstamp(row[0]) for row in rows]

    def _finish_many(
        self, event_ids: Sequence[str], sink: str, status: str, reason: str, now: datetime
    ) -> None:
        with self._transaction() as db:
            db.executemany(
                "UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?,"
                " done_at = ? WHERE event_id = ? AND sink = ? AND status = 'pending'",
                ((status, reason, _stamp(now), event_id, sink) for event_id in event_ids),
            )

    def _finish(
        self, event_id: str, sink: str, status: str, reason: str, now: datetime, *, attempted: bool
    ) -> None:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE outbox SET status = ?, attempts = attempts + ?, last_error = ?,"
                " done_at = ? WHERE event_id = ? AND sink = ? AND status = 'pending'",
                (status, int(attempted), reason, _stamp(now), event_id, sink),
            )
            self._check_row(cursor, event_id, sink)

    def _check_row(self, cursor: sqlite3.Cursor, event_id: str, sink: str) -> None:
        """Raise KeyError when no outbox row exists at all (a finished row is not an error)."""
        if cursor.rowcount == 1:
            return
        exists = self._db.execute(
            "SELECT 1 FROM outbox WHERE event_id = ? AND sink = ?", (event_id, sink)
        ).fetchone()
        if exists is None:
            raise KeyError(f"no outbox row for event {event_id} and sink {sink!r}")

    def pending_by_sink(self) -> dict[str, int]:
        """How many rows are still pending, per sink (sinks with none are left out)."""
        return dict(
            self._db.execute(
                "SELECT sink, COUNT(*) FROM outbox WHERE status = 'pending'"
                " GROUP BY sink ORDER BY sink"
            ).fetchall()
        )

    def outbox_summary(self) -> dict[str, tuple[int, datetime | None]]:
        """Per sink with pending rows: (how many, when the oldest pending event was created)."""
        rows = self._db.execute(
            "SELECT o.sink, COUNT(*), MIN(e.created_at) FROM outbox o"
            " JOIN events e ON e.event_id = o.event_id"
            " WHERE o.status = 'pending' GROUP BY o.sink ORDER BY o.sink"
        ).fetchall()
        return {sink: (count, _unstamp(oldest) if oldest else None) for sink, count, oldest in rows}

    def outcome(self, event_id: str, sink: str) -> tuple[str, int, str]:
        """(status, attempts, last_error) of one outbox row; KeyError when there is none."""
        row = self._db.execute(
            "SELECT status, attempts, last_error FROM outbox WHERE event_id = ? AND sink = ?",
            (event_id, sink),
        ).fetchone()
        if row is None:
            raise KeyError(f"no outbox row for event {event_id} and sink {sink!r}")
        return str(row[0]), int(row[1]), str(row[2])

    # -- silences ------------------------------------------------------------------------------

    def add_silence(
        self,
        *,
        job_name: str,
        starts_at: datetime,
        ends_at: datetime,
        queue: str | None = None,
        comment: str = "",
    ) -> Silence:
        """Store a new silence and return it with its id; `SilenceError` when it is invalid."""
        Silence(id=0, job_name=job_name, queue=queue, starts_at=starts_at, ends_at=ends_at)
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO silences (job_name, queue, starts_at, ends_at, comment, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job_name, queue, _stamp(starts_at), _stamp(ends_at), comment, _stamp(starts_at)),
            )
            silence_id = int(cursor.lastrowid or 0)
        return Silence(
            id=silence_id,
            job_name=job_name,
            queue=queue,
            starts_at=starts_at,
            ends_at=ends_at,
            comment=comment,
        )

    def list_silences(self) -> list[Silence]:
        """Every stored silence, expired ones included, oldest first."""
        rows = self._db.execute(
            "SELECT id, job_name, queue, starts_at, ends_at, comment FROM silences ORDER BY id"
        ).fetchall()
        return [_silence_from_row(row) for row in rows]

    def active_silences(self, now: datetime) -> list[Silence]:
        """The silences in force at `now`, oldest first."""
        stamp = _stamp(now)
        rows = self._db.execute(
            "SELECT id, job_name, queue, starts_at, ends_at, comment FROM silences"
            " WHERE starts_at <= ? AND ends_at > ? ORDER BY id",
            (stamp, stamp),
        ).fetchall()
        return [_silence_from_row(row) for row in rows]

    def expire_silence(self, silence_id: int, now: datetime) -> bool:
        """End a silence at `now`; False when it had already ended, KeyError when unknown."""
        stamp = _stamp(now)
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE silences SET ends_at = ?, starts_at = MIN(starts_at, ?)"
                " WHERE id = ? AND ends_at > ?",
                (stamp, stamp, silence_id, stamp),
            )
            if cursor.rowcount == 1:
                return True
            if db.execute("SELECT 1 FROM silences WHERE id = ?", (silence_id,)).fetchone():
                return False
        raise KeyError(f"no silence with id {silence_id}")

    def prune(self, *, older_than: datetime) -> int:
        """Delete events created before `older_than` with nothing pending; returns how many."""
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM events WHERE created_at < ? AND NOT EXISTS ("
                " SELECT 1 FROM outbox AS o"
                " WHERE o.event_id = events.event_id AND o.status = 'pending')",
                (_stamp(older_than),),
            )
            return cursor.rowcount


_CHUNK = 500
"""Job ids per `IN (...)` lookup, well below SQLite's bound-parameter limit."""


def _since(job: Job, moment: datetime) -> bool:
    """True when the job has been in its state since `moment` or later."""
    return job.state_since is not None and job.state_since >= moment


def _optional(moment: datetime | None) -> str | None:
    return None if moment is None else format_time(moment)


def _write_mark(db: sqlite3.Connection, target: str, mark: PollMark) -> None:
    """Record where incremental polling of the target stands."""
    db.execute(
        "INSERT INTO poll_marks (target, high_water, baseline_floor) VALUES (?, ?, ?)"
        " ON CONFLICT (target) DO UPDATE SET high_water = excluded.high_water,"
        " baseline_floor = excluded.baseline_floor",
        (target, _optional(mark.high_water), _optional(mark.baseline_floor)),
    )


def _write_history(db: sqlite3.Connection, target: str, update: HistoryUpdate) -> None:
    """Apply one poll's rule-state changes: cleared marks go before added ones."""
    db.executemany(
        "INSERT INTO job_history (target, job_name, durations, failures, last_outcome)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (target, job_name) DO UPDATE SET"
        " durations = excluded.durations, failures = excluded.failures,"
        " last_outcome = excluded.last_outcome",
        (
            (target, h.name, json.dumps(list(h.durations_s)), h.failures, h.last_outcome)
            for h in update.names
        ),
    )
    db.executemany(
        "DELETE FROM rule_marks WHERE target = ? AND job_id = ? AND rule = ?",
        ((target, job_id, rule) for job_id, rule in update.marks_cleared),
    )
    db.executemany(
        "INSERT INTO rule_marks (target, job_id, rule, anchor) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (target, job_id, rule) DO UPDATE SET anchor = excluded.anchor",
        (
            (target, m.job_id, m.rule, _stamp(m.anchor) if m.anchor else "")
            for m in update.marks_added
        ),
    )


def _earliest(plan: Iterable[tuple[str, datetime]]) -> dict[str, datetime]:
    """The earliest first-attempt time per sink, in the order sinks first appear."""
    earliest: dict[str, datetime] = {}
    for sink, at in plan:
        if sink not in earliest or at < earliest[sink]:
            earliest[sink] = at
    return earliest


def _silence_from_row(row: tuple[int, str, str | None, str, str, str]) -> Silence:
    silence_id, job_name, queue, starts_at, ends_at, comment = row
    return Silence(
        id=silence_id,
        job_name=job_name,
        queue=queue,
        starts_at=_unstamp(starts_at),
        ends_at=_unstamp(ends_at),
        comment=comment,
    )


# -- schema version, migration and read-only inspection ----------------------------------------
