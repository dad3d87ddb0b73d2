"""SQLite: the `Outbox` concern — tables `events` and `outbox`.

Events and their outbox rows (and each new event's decision) are inserted only inside
`commit_poll`'s transaction, through `insert_events`; the dispatcher then reads and marks rows
with the methods below, each write one transaction that also records the attempt
(`monitor.store.sqlite.trail`). What the rows mean is in `monitor.store.contract_delivery.Outbox`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from datetime import datetime

from monitor.codec import event_from_dict, event_to_dict
from monitor.models import Event, Notification
from monitor.store.marks import OutboxMarks
from monitor.store.sqlite.connection import SqliteBase, stamp, unstamp
from monitor.store.sqlite.trail import (
    digest_id,
    prune_trail,
    record_attempt,
    record_deferrals,
    write_decision,
)
from monitor.store.types import (
    Delivery,
    Mark,
    Routing,
    earliest_per_sink,
    plan_record,
)

_RETRY = (
    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
    " WHERE event_id = ? AND sink = ? AND status = 'pending'"
)


class SqliteOutbox(OutboxMarks, SqliteBase):
    """Events and the outbox over the shared connection."""

    async def due(
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
            (stamp(now), *skip, *only, limit),
        ).fetchall()
        return [
            Delivery(
                event=event_from_dict(json.loads(data)),
                sink=sink,
                attempts=attempts,
                created_at=unstamp(created_at),
            )
            for data, sink, attempts, created_at in rows
        ]

    async def next_due_at(self) -> datetime | None:
        """When the earliest pending row falls due (None when nothing is pending)."""
        row = self._db.execute(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'"
        ).fetchone()
        return None if row[0] is None else unstamp(row[0])

    async def defer(
        self, sink: str, until: datetime, *, now: datetime | None = None, reason: str = ""
    ) -> int:
        """Move every pending row of `sink` due before `until` to `until`; returns how many.

        Not an attempt: `attempts` and `last_error` stay. With `now`, each row moved gets a
        `deferred` attempt saying `reason`.
        """
        with self._transaction() as db:
            if now is not None:
                record_deferrals(db, sink, until, now=now, reason=reason)
            cursor = db.execute(
                "UPDATE outbox SET next_attempt_at = ?"
                " WHERE sink = ? AND status = 'pending' AND next_attempt_at < ?",
                (stamp(until), sink, stamp(until)),
            )
            return cursor.rowcount

    async def release_retries(
        self, sink: str, now: datetime, *, beyond: datetime | None = None
    ) -> int:
        """Make every pending row of `sink` that already failed and waits later than `beyond`
        (default `now`) due at `now`; returns how many. Not an attempt."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE outbox SET next_attempt_at = ?"
                " WHERE sink = ? AND status = 'pending' AND attempts > 0 AND next_attempt_at > ?",
                (stamp(now), sink, stamp(max(now, beyond or now))),
            )
            return cursor.rowcount

    async def pending_by_sink(self) -> dict[str, int]:
        """How many rows are still pending, per sink (sinks with none are left out)."""
        return dict(
            self._db.execute(
                "SELECT sink, COUNT(*) FROM outbox WHERE status = 'pending'"
                " GROUP BY sink ORDER BY sink"
            ).fetchall()
        )

    async def outbox_summary(self) -> dict[str, tuple[int, datetime | None]]:
        """Per sink with pending rows: (how many, when the oldest pending event was created)."""
        rows = self._db.execute(
            "SELECT o.sink, COUNT(*), MIN(e.created_at) FROM outbox o"
            " JOIN events e ON e.event_id = o.event_id"
            " WHERE o.status = 'pending' GROUP BY o.sink ORDER BY o.sink"
        ).fetchall()
        return {sink: (count, unstamp(oldest) if oldest else None) for sink, count, oldest in rows}

    async def outcome(self, event_id: str, sink: str) -> tuple[str, int, str]:
        """(status, attempts, last_error) of one outbox row; KeyError when there is none."""
        row = self._db.execute(
            "SELECT status, attempts, last_error FROM outbox WHERE event_id = ? AND sink = ?",
            (event_id, sink),
        ).fetchone()
        if row is None:
            raise KeyError(f"no outbox row for event {event_id} and sink {sink!r}")
        return str(row[0]), int(row[1]), str(row[2])

    async def delivered_events(self, sink: str, since: datetime | None) -> list[Event]:
        """The events delivered to `sink` at or after `since` (None: all kept), oldest first."""
        floor = "" if since is None else stamp(since)
        rows = self._db.execute(
            "SELECT e.data FROM events AS e JOIN outbox AS o ON o.event_id = e.event_id"
            " WHERE o.sink = ? AND o.status = 'delivered' AND o.done_at >= ? ORDER BY e.seq",
            (sink, floor),
        ).fetchall()
        return [event_from_dict(json.loads(data)) for (data,) in rows]

    async def prune(self, *, older_than: datetime) -> int:
        """Delete events created before `older_than` with nothing pending; returns how many."""
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM events WHERE created_at < ? AND NOT EXISTS ("
                " SELECT 1 FROM outbox AS o"
                " WHERE o.event_id = events.event_id AND o.status = 'pending')",
                (stamp(older_than),),
            )
            prune_trail(db, older_than)
            return cursor.rowcount

    async def _retry(
        self,
        retries: Sequence[tuple[str, datetime]],
        sink: str,
        mark: Mark,
        *,
        check: bool = False,
        digest: Notification | None = None,
    ) -> None:
        """Count a failed attempt on pending rows and record it; `check`: a row that never
        existed is a KeyError."""
        with self._transaction() as db:
            mark = mark.sent_in(digest_id(db, sink, digest, mark.now))
            for event_id, at in retries:
                cursor = db.execute(_RETRY, (stamp(at), mark.answer, event_id, sink))
                if check:
                    self._check_row(cursor, event_id, sink)
                if cursor.rowcount == 1:
                    record_attempt(db, event_id, sink, mark, next_attempt_at=at)

    async def _finish(
        self,
        event_ids: Sequence[str],
        sink: str,
        mark: Mark,
        *,
        attempted: bool = True,
        check: bool = False,
        digest: Notification | None = None,
    ) -> None:
        """Mark pending rows final (`mark.outcome`) and record each one's attempt; `check`: a
        row that never existed is a KeyError."""
        done_at = stamp(mark.now) if mark.now is not None else None
        with self._transaction() as db:
            mark = mark.sent_in(digest_id(db, sink, digest, mark.now))
            for event_id in event_ids:
                cursor = db.execute(
                    "UPDATE outbox SET status = ?, attempts = attempts + ?, last_error = ?,"
                    " done_at = ? WHERE event_id = ? AND sink = ? AND status = 'pending'",
                    (mark.outcome, int(attempted), mark.answer, done_at, event_id, sink),
                )
                if check:
                    self._check_row(cursor, event_id, sink)
                if cursor.rowcount == 1:
                    record_attempt(db, event_id, sink, mark)

    def _check_row(self, cursor: sqlite3.Cursor, event_id: str, sink: str) -> None:
        """Raise KeyError when no outbox row exists at all (a finished row is not an error)."""
        if cursor.rowcount == 1:
            return
        exists = self._db.execute(
            "SELECT 1 FROM outbox WHERE event_id = ? AND sink = ?", (event_id, sink)
        ).fetchone()
        if exists is None:
            raise KeyError(f"no outbox row for event {event_id} and sink {sink!r}")


def insert_events(
    db: sqlite3.Connection,
    target: str,
    events: Sequence[Event],
    *,
    sinks: Sequence[str],
    now: datetime,
    routing: Routing | None,
    cycle_id: str = "",
) -> list[Event]:
    """Insert a poll's events, their outbox rows and decisions (inside `commit_poll`'s
    transaction); returns the events that were new. A known `event_id` is skipped."""
    moment = stamp(now)
    inserted: list[Event] = []
    for event in events:
        if event.target != target:
            raise ValueError(
                f"event {event.event_id} belongs to target {event.target!r}, not {target!r}"
            )
        cursor = db.execute(
            "INSERT INTO events (event_id, target, data, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (event_id) DO NOTHING",
            (event.event_id, target, json.dumps(event_to_dict(event)), moment),
        )
        if cursor.rowcount != 1:
            continue
        inserted.append(event)
        plan = plan_record(routing(event) if routing is not None else [(s, now) for s in sinks])
        write_decision(db, event.event_id, plan, cycle_id=cycle_id, now=now)
        db.executemany(
            "INSERT INTO outbox (event_id, sink, next_attempt_at) VALUES (?, ?, ?)",
            ((event.event_id, sink, stamp(at)) for sink, at in earliest_per_sink(plan).items()),
        )
    return inserted
