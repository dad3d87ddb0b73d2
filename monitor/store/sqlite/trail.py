"""SQLite: the `TrailStore` concern — tables `job_sightings`, `decisions`, `attempts`, `digests`.

Written only inside other writes' transactions, through the helpers below: sightings and
decisions by `commit_poll` (`write_sightings`, `write_decision`), attempts and digests by the
outbox's marks (`record_attempt`, `record_deferrals`). Read back per job by `SqliteTrail`, for
`dli-monitor explain`, and newest first for the status page. What the rows mean is in
`monitor.store.contract.TrailStore`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from datetime import datetime

from monitor.codec import event_from_dict, job_from_dict, routing_from_dict, routing_to_dict
from monitor.models import Event, JobState, Notification
from monitor.models_explain import (
    Attempt,
    EventRecord,
    JobTrail,
    OutboxState,
    RoutingRecord,
    Sighting,
)
from monitor.store.sqlite.connection import SqliteBase, stamp, unstamp
from monitor.store.types import Mark, newest_runs

_JOB_ID = "json_extract(data, '$.job.id')"
"""The expression index `events_by_job` is built on: an event's job id."""


class SqliteTrail(SqliteBase):
    """Each job's sightings, and each event's decision and attempts, read back per job."""

    async def job_trails(self, job_id: str) -> list[JobTrail]:
        """Everything stored about the job with this id, one trail per target that knows it.

        Read in one read transaction: a consistent picture even while the daemon writes.
        """
        db = self._db
        db.execute("BEGIN")
        try:
            targets = {
                str(row[0])
                for query in (
                    "SELECT DISTINCT target FROM job_sightings WHERE job_id = ?",
                    "SELECT target FROM jobs WHERE job_id = ?",
                    f"SELECT DISTINCT target FROM events WHERE {_JOB_ID} = ?",
                )
                for row in db.execute(query, (job_id,))
            }
            return [_trail(db, target, job_id) for target in sorted(targets)]
        finally:
            db.execute("COMMIT")

    async def jobs_named(self, name: str, *, limit: int) -> list[tuple[str, str]]:
        """(target, job id) of the newest `limit` jobs called `name`, newest first.

        The sightings (indexed by name) find every job seen since they were recorded; only when
        they hold fewer than `limit` runs are the stored jobs scanned too (older state files).
        """
        db = self._db
        first_seen = {
            (str(target), str(job_id)): unstamp(seen)
            for target, job_id, seen in db.execute(
                "SELECT target, job_id, MIN(seen_at) FROM job_sightings WHERE job_name = ?"
                " GROUP BY target, job_id",
                (name,),
            )
        }
        if len(first_seen) < limit:
            rows = db.execute(
                "SELECT target, job_id, data FROM jobs WHERE json_extract(data, '$.name') = ?",
                (name,),
            ).fetchall()
        else:
            rows = [
                row
                for target, job_id in first_seen
                for row in db.execute(
                    "SELECT target, job_id, data FROM jobs WHERE target = ? AND job_id = ?",
                    (target, job_id),
                )
            ]
        created = {
            (str(target), str(job_id)): job_from_dict(json.loads(data)).create_time
            for target, job_id, data in rows
        }
        return newest_runs(first_seen, created, limit)

    async def recent_events(self, limit: int) -> list[EventRecord]:
        """The newest `limit` events of every target, newest first, in one read transaction."""
        db = self._db
        db.execute("BEGIN")
        try:
            rows = db.execute(
                "SELECT e.data, e.created_at, d.cycle_id, d.data FROM events AS e"
                " LEFT JOIN decisions AS d ON d.event_id = e.event_id"
                " ORDER BY e.seq DESC LIMIT ?",
                (max(0, limit),),
            ).fetchall()
            return [
                _event_record(db, event_from_dict(json.loads(data)), unstamp(at), cycle, decision)
                for data, at, cycle, decision in rows
            ]
        finally:
            db.execute("COMMIT")


def _trail(db: sqlite3.Connection, target: str, job_id: str) -> JobTrail:
    """One job's trail on one target."""
    row = db.execute(
        "SELECT data FROM jobs WHERE target = ? AND job_id = ?", (target, job_id)
    ).fetchone()
    baseline = db.execute("SELECT baseline_at FROM targets WHERE target = ?", (target,)).fetchone()
    sightings = tuple(
        Sighting(
            target=target,
            job_id=job_id,
            state=JobState(state),
            seen_at=unstamp(seen_at),
            job_name=job_name,
            queue=queue,
            cycle_id=cycle_id,
            baseline=bool(flag),
        )
        for seen_at, state, job_name, queue, cycle_id, flag in db.execute(
            "SELECT seen_at, state, job_name, queue, cycle_id, baseline FROM job_sightings"
            " WHERE target = ? AND job_id = ? ORDER BY seen_at, state",
            (target, job_id),
        )
    )
    events = tuple(
        _event_record(db, event_from_dict(json.loads(data)), unstamp(created), cycle, decision)
        for data, created, cycle, decision in db.execute(
            "SELECT e.data, e.created_at, d.cycle_id, d.data FROM events AS e"
            " LEFT JOIN decisions AS d ON d.event_id = e.event_id"
            " WHERE e.target = ? AND json_extract(e.data, '$.job.id') = ? ORDER BY e.seq",
            (target, job_id),
        )
    )
    return JobTrail(
        target=target,
        job_id=job_id,
        job=job_from_dict(json.loads(row[0])) if row is not None else None,
        baseline_at=unstamp(baseline[0]) if baseline is not None else None,
        sightings=sightings,
        events=events,
    )


def _event_record(
    db: sqlite3.Connection,
    event: Event,
    created_at: datetime,
    cycle_id: str | None,
    decision: str | None,
) -> EventRecord:
    """An event with its decision, its outbox rows and its attempts."""
    outbox = tuple(
        OutboxState(
            sink=sink,
            status=status,
            attempts=int(attempts),
            next_attempt_at=unstamp(next_at),
            last_error=last_error,
            done_at=unstamp(done_at) if done_at else None,
        )
        for sink, status, attempts, next_at, last_error, done_at in db.execute(
            "SELECT sink, status, attempts, next_attempt_at, last_error, done_at FROM outbox"
            " WHERE event_id = ? ORDER BY sink",
            (event.event_id,),
        )
    )
    attempts = tuple(
        Attempt(
            event_id=event.event_id,
            sink=sink,
            attempt=int(number),
            at=unstamp(at) if at else None,
            outcome=outcome,
            answer=answer,
            kind=kind,
            next_attempt_at=unstamp(next_at) if next_at else None,
            digest_id=None if digest_id is None else int(digest_id),
            digest_size=int(size or 0),
        )
        for sink, number, at, outcome, answer, kind, next_at, digest_id, size in db.execute(
            "SELECT a.sink, a.attempt, a.at, a.outcome, a.answer, a.kind, a.next_attempt_at,"
            " a.digest_id, g.size FROM attempts AS a LEFT JOIN digests AS g ON g.id = a.digest_id"
            " WHERE a.event_id = ? ORDER BY a.id",
            (event.event_id,),
        )
    )
    return EventRecord(
        event=event,
        created_at=created_at,
        cycle_id=cycle_id or "",
        routing=routing_from_dict(json.loads(decision)) if decision is not None else None,
        outbox=outbox,
        attempts=attempts,
    )


def write_sightings(db: sqlite3.Connection, target: str, sightings: Iterable[Sighting]) -> None:
    """Insert one commit's sightings (inside its transaction); one of another target is a
    `ValueError`, and one already stored is left as it is."""
    rows = []
    for s in sightings:
        if s.target != target:
            raise ValueError(f"sighting of job {s.job_id} belongs to {s.target!r}, not {target!r}")
        seen = stamp(s.seen_at)
        rows.append(
            (
                target,
                s.job_id,
                seen,
                s.state.value,
                s.job_name,
                s.queue,
                s.cycle_id,
                int(s.baseline),
            )
        )
    db.executemany(
        "INSERT INTO job_sightings (target, job_id, seen_at, state, job_name, queue, cycle_id,"
        " baseline) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        rows,
    )


def write_decision(
    db: sqlite3.Connection, event_id: str, record: RoutingRecord, *, cycle_id: str, now: datetime
) -> None:
    """Keep a new event's routing decision (inside `commit_poll`'s transaction)."""
    db.execute(
        "INSERT INTO decisions (event_id, cycle_id, decided_at, data) VALUES (?, ?, ?, ?)",
        (event_id, cycle_id, stamp(now), json.dumps(routing_to_dict(record))),
    )


def digest_id(
    db: sqlite3.Connection, sink: str, digest: Notification | None, now: datetime | None
) -> int | None:
    """The id of the digest message `digest` sent to `sink` at `now` (made on first use)."""
    if digest is None:
        return None
    if now is None:
        raise ValueError("a digest's outcome needs the time it was sent (now)")
    key = (sink, digest.notification_id, stamp(now))
    db.execute(
        "INSERT INTO digests (sink, notification_id, sent_at, size) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (sink, notification_id, sent_at) DO NOTHING",
        (*key, len(digest.events)),
    )
    row = db.execute(
        "SELECT id FROM digests WHERE sink = ? AND notification_id = ? AND sent_at = ?", key
    ).fetchone()
    return int(row[0])


def record_attempt(
    db: sqlite3.Connection,
    event_id: str,
    sink: str,
    mark: Mark,
    *,
    next_attempt_at: datetime | None = None,
) -> None:
    """One attempt of an outbox row that was just marked, numbered by its `attempts`."""
    db.execute(
        "INSERT INTO attempts (event_id, sink, attempt, at, outcome, answer, kind,"
        " next_attempt_at, digest_id) SELECT event_id, sink, attempts, ?, ?, ?, ?, ?, ?"
        " FROM outbox WHERE event_id = ? AND sink = ?",
        (
            stamp(mark.now) if mark.now is not None else None,
            mark.outcome,
            mark.answer,
            mark.kind,
            stamp(next_attempt_at) if next_attempt_at is not None else None,
            mark.digest,
            event_id,
            sink,
        ),
    )


def record_deferrals(
    db: sqlite3.Connection, sink: str, until: datetime, *, now: datetime, reason: str
) -> None:
    """A `deferred` attempt for every pending row of `sink` that `defer` is about to move."""
    db.execute(
        "INSERT INTO attempts (event_id, sink, attempt, at, outcome, answer, next_attempt_at)"
        " SELECT event_id, sink, attempts, ?, 'deferred', ?, ? FROM outbox"
        " WHERE sink = ? AND status = 'pending' AND next_attempt_at < ?",
        (stamp(now), reason, stamp(until), sink, stamp(until)),
    )


def prune_trail(db: sqlite3.Connection, older_than: datetime) -> None:
    """After old events went (their decisions and attempts with them): drop digests no
    attempt names any more, and sightings older than `older_than` of jobs no longer stored."""
    db.execute(
        "DELETE FROM digests WHERE NOT EXISTS"
        " (SELECT 1 FROM attempts AS a WHERE a.digest_id = digests.id)"
    )
    db.execute(
        "DELETE FROM job_sightings WHERE seen_at < ? AND NOT EXISTS (SELECT 1 FROM jobs AS j"
        " WHERE j.target = job_sightings.target AND j.job_id = job_sightings.job_id)",
        (stamp(older_than),),
    )
