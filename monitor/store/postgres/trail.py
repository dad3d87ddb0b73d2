"""PostgreSQL: the `TrailStore` concern — tables `job_sightings`, `decisions`, `attempts`,
`digests`.

Written only inside other writes' transactions, through the helpers below: sightings and
decisions by `commit_poll` (`write_sightings`, `write_decision`), attempts and digests by the
outbox's marks (`record_attempt`, `record_deferrals`). Read back per job by `PostgresTrail`, for
`dli-monitor explain` (never fenced: any replica may read). What the rows mean is in
`monitor.store.contract.TrailStore`; the SQLite twin is `monitor.store.sqlite.trail`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from monitor.codec import event_from_dict, job_from_dict, routing_from_dict, routing_to_dict
from monitor.models import JobState, Notification
from monitor.models_explain import (
    Attempt,
    EventRecord,
    JobTrail,
    OutboxState,
    RoutingRecord,
    Sighting,
)
from monitor.store.postgres.connection import PostgresBase, aware
from monitor.store.types import newest_runs

_JOB_ID = "(data->'job'->>'id')"
"""The expression index `events_by_job` is built on: an event's job id."""

FINISH_AND_RECORD = (
    "WITH done AS (UPDATE outbox SET status = $1, attempts = attempts + $2, last_error = $3,"
    " done_at = $4 WHERE event_id = ANY($5::text[]) AND sink = $6 AND status = 'pending'"
    " RETURNING event_id, sink, attempts)"
    " INSERT INTO attempts (event_id, sink, attempt, at, outcome, answer, kind, digest_id)"
    " SELECT event_id, sink, attempts, $4, $1, $3, $7::text, $8::bigint FROM done"
)
"""Finish pending outbox rows and record one attempt per row changed (the status counts them)."""
RETRY_AND_RECORD = (
    "WITH done AS (UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1,"
    " last_error = $2 WHERE event_id = $3 AND sink = $4 AND status = 'pending'"
    " RETURNING event_id, sink, attempts)"
    " INSERT INTO attempts (event_id, sink, attempt, at, outcome, answer, kind, next_attempt_at,"
    " digest_id) SELECT event_id, sink, attempts, $5::timestamptz, 'retry', $2, $6::text, $1,"
    " $7::bigint FROM done"
)
"""Count a failed attempt on a pending outbox row and record it (the status counts it)."""


class PostgresTrail(PostgresBase):
    """Each job's sightings, and each event's decision and attempts, read back per job."""

    async def job_trails(self, job_id: str) -> list[JobTrail]:
        """Everything stored about the job with this id, one trail per target that knows it.

        Read in one REPEATABLE READ transaction: a consistent picture while the leader writes.
        """
        async with self._snapshot() as conn:
            rows = await conn.fetch(
                "SELECT target FROM job_sightings WHERE job_id = $1"
                " UNION SELECT target FROM jobs WHERE job_id = $1"
                f" UNION SELECT target FROM events WHERE {_JOB_ID} = $1",
                job_id,
            )
            targets = sorted(str(r["target"]) for r in rows)
            return [await _trail(conn, target, job_id) for target in targets]

    async def jobs_named(self, name: str, *, limit: int) -> list[tuple[str, str]]:
        """(target, job id) of the newest `limit` jobs called `name`, newest first.

        The sightings (indexed by name) find every job seen since they were recorded; only when
        they hold fewer than `limit` runs are the stored jobs scanned too (older databases).
        """
        seen = await self._fetch(
            "SELECT target, job_id, min(seen_at) AS seen FROM job_sightings WHERE job_name = $1"
            " GROUP BY target, job_id",
            name,
        )
        first_seen = {(str(r["target"]), str(r["job_id"])): r["seen"] for r in seen}
        if len(first_seen) < limit:
            stored = await self._fetch(
                "SELECT target, job_id, data FROM jobs WHERE data->>'name' = $1", name
            )
        else:
            stored = await self._fetch(
                "SELECT j.target, j.job_id, j.data FROM jobs AS j"
                " JOIN unnest($1::text[], $2::text[]) AS k (target, job_id)"
                " ON j.target = k.target AND j.job_id = k.job_id",
                [target for target, _ in first_seen],
                [job_id for _, job_id in first_seen],
            )
        created = {
            (str(r["target"]), str(r["job_id"])): job_from_dict(json.loads(r["data"])).create_time
            for r in stored
        }
        return newest_runs(first_seen, created, limit)

    async def recent_events(self, limit: int) -> list[EventRecord]:
        """The newest `limit` events of every target, newest first, in one REPEATABLE READ
        transaction."""
        async with self._snapshot() as conn:
            rows = await conn.fetch(
                "SELECT e.event_id, e.data, e.created_at, d.cycle_id, d.data AS decision"
                " FROM events AS e LEFT JOIN decisions AS d ON d.event_id = e.event_id"
                " ORDER BY e.seq DESC LIMIT $1",
                max(0, limit),
            )
            return [await _event_record(conn, row) for row in rows]


async def _trail(conn: Any, target: str, job_id: str) -> JobTrail:
    """One job's trail on one target, read on `conn` (inside its transaction)."""
    data = await conn.fetchval(
        "SELECT data FROM jobs WHERE target = $1 AND job_id = $2", target, job_id
    )
    baseline = await conn.fetchval("SELECT baseline_at FROM targets WHERE target = $1", target)
    sightings = await conn.fetch(
        "SELECT seen_at, state, job_name, queue, cycle_id, baseline FROM job_sightings"
        ' WHERE target = $1 AND job_id = $2 ORDER BY seen_at, state COLLATE "C"',
        target,
        job_id,
    )
    events = await conn.fetch(
        "SELECT e.event_id, e.data, e.created_at, d.cycle_id, d.data AS decision"
        " FROM events AS e LEFT JOIN decisions AS d ON d.event_id = e.event_id"
        " WHERE e.target = $1 AND (e.data->'job'->>'id') = $2 ORDER BY e.seq",
        target,
        job_id,
    )
    return JobTrail(
        target=target,
        job_id=job_id,
        job=job_from_dict(json.loads(data)) if data is not None else None,
        baseline_at=baseline,
        sightings=tuple(
            Sighting(
                target=target,
                job_id=job_id,
                state=JobState(r["state"]),
                seen_at=r["seen_at"],
                job_name=str(r["job_name"]),
                queue=str(r["queue"]),
                cycle_id=str(r["cycle_id"]),
                baseline=bool(r["baseline"]),
            )
            for r in sightings
        ),
        events=tuple([await _event_record(conn, r) for r in events]),
    )


async def _event_record(conn: Any, row: Any) -> EventRecord:
    """An event row with its decision, its outbox rows and its attempts."""
    event_id = str(row["event_id"])
    outbox = await conn.fetch(
        "SELECT sink, status, attempts, next_attempt_at, last_error, done_at FROM outbox"
        ' WHERE event_id = $1 ORDER BY sink COLLATE "C"',
        event_id,
    )
    attempts = await conn.fetch(
        "SELECT a.sink, a.attempt, a.at, a.outcome, a.answer, a.kind, a.next_attempt_at,"
        " a.digest_id, g.size FROM attempts AS a LEFT JOIN digests AS g ON g.id = a.digest_id"
        " WHERE a.event_id = $1 ORDER BY a.id",
        event_id,
    )
    decision = row["decision"]
    return EventRecord(
        event=event_from_dict(json.loads(row["data"])),
        created_at=row["created_at"],
        cycle_id=str(row["cycle_id"] or ""),
        routing=routing_from_dict(json.loads(decision)) if decision is not None else None,
        outbox=tuple(
            OutboxState(
                sink=str(r["sink"]),
                status=str(r["status"]),
                attempts=int(r["attempts"]),
                next_attempt_at=r["next_attempt_at"],
                last_error=str(r["last_error"]),
                done_at=r["done_at"],
            )
            for r in outbox
        ),
        attempts=tuple(
            Attempt(
                event_id=event_id,
                sink=str(r["sink"]),
                attempt=int(r["attempt"]),
                at=r["at"],
                outcome=str(r["outcome"]),
                answer=str(r["answer"]),
                kind=str(r["kind"]),
                next_attempt_at=r["next_attempt_at"],
                digest_id=None if r["digest_id"] is None else int(r["digest_id"]),
                digest_size=int(r["size"] or 0),
            )
            for r in attempts
        ),
    )


async def write_sightings(conn: Any, target: str, sightings: Iterable[Sighting]) -> None:
    """Insert one commit's sightings (inside its transaction); one of another target is a
    `ValueError`, and one already stored is left as it is."""
    rows = []
    for s in sightings:
        if s.target != target:
            raise ValueError(f"sighting of job {s.job_id} belongs to {s.target!r}, not {target!r}")
        rows.append(
            (
                target,
                s.job_id,
                aware(s.seen_at),
                s.state.value,
                s.job_name,
                s.queue,
                s.cycle_id,
                s.baseline,
            )
        )
    if rows:
        await conn.executemany(
            "INSERT INTO job_sightings (target, job_id, seen_at, state, job_name, queue,"
            " cycle_id, baseline) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            rows,
        )


def decision_row(
    event_id: str, record: RoutingRecord, *, cycle_id: str, now: datetime
) -> tuple[str, str, datetime, str]:
    """A `decisions` row for `write_decisions`."""
    return (event_id, cycle_id, aware(now), json.dumps(routing_to_dict(record)))


async def write_decisions(conn: Any, rows: list[tuple[str, str, datetime, str]]) -> None:
    """Keep new events' routing decisions (inside `commit_poll`'s transaction)."""
    if rows:
        await conn.executemany(
            "INSERT INTO decisions (event_id, cycle_id, decided_at, data) VALUES ($1, $2, $3, $4)",
            rows,
        )


async def digest_id(
    conn: Any, sink: str, digest: Notification | None, now: datetime | None
) -> int | None:
    """The id of the digest message `digest` sent to `sink` at `now` (made on first use)."""
    if digest is None:
        return None
    if now is None:
        raise ValueError("a digest's outcome needs the time it was sent (now)")
    key = (sink, digest.notification_id, aware(now))
    await conn.execute(
        "INSERT INTO digests (sink, notification_id, sent_at, size) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (sink, notification_id, sent_at) DO NOTHING",
        *key,
        len(digest.events),
    )
    found = await conn.fetchval(
        "SELECT id FROM digests WHERE sink = $1 AND notification_id = $2 AND sent_at = $3", *key
    )
    return int(found)


async def record_deferrals(
    conn: Any, sink: str, until: datetime, *, now: datetime, reason: str
) -> None:
    """A `deferred` attempt for every pending row of `sink` that `defer` is about to move."""
    await conn.execute(
        "INSERT INTO attempts (event_id, sink, attempt, at, outcome, answer, next_attempt_at)"
        " SELECT event_id, sink, attempts, $1, 'deferred', $2, $3 FROM outbox"
        " WHERE sink = $4 AND status = 'pending' AND next_attempt_at < $3",
        aware(now),
        reason,
        aware(until),
        sink,
    )


async def prune_trail(conn: Any, older_than: datetime) -> None:
    """After old events went (their decisions and attempts with them): drop digests no
    attempt names any more, and sightings older than `older_than` of jobs no longer stored."""
    await conn.execute(
        "DELETE FROM digests WHERE NOT EXISTS"
        " (SELECT 1 FROM attempts AS a WHERE a.digest_id = digests.id)"
    )
    await conn.execute(
        "DELETE FROM job_sightings AS s WHERE s.seen_at < $1 AND NOT EXISTS"
        " (SELECT 1 FROM jobs AS j WHERE j.target = s.target AND j.job_id = s.job_id)",
        aware(older_than),
    )
