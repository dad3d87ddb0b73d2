"""PostgreSQL: the `Outbox` concern — tables `events` and `outbox`.

Events and their outbox rows (and each new event's decision) are inserted only inside
`commit_poll`'s transaction, through `insert_events`; the dispatcher then claims rows with `due`
and marks them with the methods below, each write one transaction that also records the
attempts (one statement: the update's returned rows feed the insert). What the rows mean is in
`monitor.store.contract_delivery.Outbox`; the SQLite twin is `monitor.store.sqlite.outbox`.

Fenced (with a fence provider, the lease is checked first inside the transaction): `due` (the
claim), every `mark_*`, `defer` and `release_retries`. So a deposed leader can neither take rows
to deliver nor record a delivery. Not fenced: the reads, and `prune` (housekeeping of finished
rows, harmless from any replica).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from monitor.codec import event_from_dict, event_to_dict
from monitor.models import Event, Notification
from monitor.store.marks import OutboxMarks
from monitor.store.postgres.connection import PostgresBase, aware, optional_aware, rowcount
from monitor.store.postgres.trail import (
    FINISH_AND_RECORD,
    RETRY_AND_RECORD,
    decision_row,
    digest_id,
    prune_trail,
    record_deferrals,
    write_decisions,
)
from monitor.store.types import (
    Delivery,
    Mark,
    Routing,
    earliest_per_sink,
    plan_record,
)


class PostgresOutbox(OutboxMarks, PostgresBase):
    """Events and the outbox over the shared pool."""

    async def due(
        self,
        now: datetime,
        limit: int = 100,
        *,
        exclude_sinks: Collection[str] = (),
        sink: str | None = None,
    ) -> list[Delivery]:
        """Pending rows whose next attempt is at or before `now`, oldest event first.

        `sink` restricts the rows to that one sink. This is the claim: the rows are read with
        `FOR UPDATE SKIP LOCKED` inside a fenced transaction, so a deposed leader gets
        `StoreFencedOff` instead of rows, and two claims running at the same moment never
        return the same row. The row locks end with that transaction, before anything is
        sent: the lease (checked again when each delivery is marked) is the real guard, and
        delivery stays at-least-once, receivers de-duplicating by `event_id`.
        """
        where, args = "", [aware(now), limit]
        if exclude_sinks:
            args.append(sorted(set(exclude_sinks)))
            where += f" AND NOT (o.sink = ANY(${len(args)}::text[]))"
        if sink is not None:
            args.append(sink)
            where += f" AND o.sink = ${len(args)}"
        async with self._transaction(fenced=True) as conn:
            rows = await conn.fetch(
                "SELECT e.data, o.sink, o.attempts, e.created_at"
                " FROM outbox AS o JOIN events AS e ON e.event_id = o.event_id"
                f" WHERE o.status = 'pending' AND o.next_attempt_at <= $1{where}"
                ' ORDER BY e.seq, o.sink COLLATE "C" LIMIT $2 FOR UPDATE OF o SKIP LOCKED',
                *args,
            )
        return [
            Delivery(
                event=event_from_dict(json.loads(r["data"])),
                sink=str(r["sink"]),
                attempts=int(r["attempts"]),
                created_at=r["created_at"],
            )
            for r in rows
        ]

    async def next_due_at(self) -> datetime | None:
        """When the earliest pending row falls due (None when nothing is pending)."""
        row = await self._fetchrow(
            "SELECT min(next_attempt_at) AS at FROM outbox WHERE status = 'pending'"
        )
        at: datetime | None = row["at"]
        return at

    async def defer(
        self, sink: str, until: datetime, *, now: datetime | None = None, reason: str = ""
    ) -> int:
        """Move every pending row of `sink` due before `until` to `until`; returns how many.

        Not an attempt: `attempts` and `last_error` stay. With `now`, each row moved gets a
        `deferred` attempt saying `reason`.
        """
        at = aware(until)
        async with self._transaction(fenced=True) as conn:
            if now is not None:
                await record_deferrals(conn, sink, at, now=now, reason=reason)
            status = await conn.execute(
                "UPDATE outbox SET next_attempt_at = $1"
                " WHERE sink = $2 AND status = 'pending' AND next_attempt_at < $1",
                at,
                sink,
            )
        return rowcount(status)

    async def release_retries(
        self, sink: str, now: datetime, *, beyond: datetime | None = None
    ) -> int:
        """Make every pending row of `sink` that already failed and waits later than `beyond`
        (default `now`) due at `now`; returns how many. Not an attempt."""
        at = aware(now)
        async with self._transaction(fenced=True) as conn:
            status = await conn.execute(
                "UPDATE outbox SET next_attempt_at = $1"
                " WHERE sink = $2 AND status = 'pending' AND attempts > 0 AND next_attempt_at > $3",
                at,
                sink,
                max(at, aware(beyond or now)),
            )
        return rowcount(status)

    async def pending_by_sink(self) -> dict[str, int]:
        """How many rows are still pending, per sink (sinks with none are left out)."""
        rows = await self._fetch(
            "SELECT sink, count(*) AS n FROM outbox WHERE status = 'pending'"
            ' GROUP BY sink ORDER BY sink COLLATE "C"'
        )
        return {str(r["sink"]): int(r["n"]) for r in rows}

    async def outbox_summary(self) -> dict[str, tuple[int, datetime | None]]:
        """Per sink with pending rows: (how many, when the oldest pending event was created)."""
        rows = await self._fetch(
            "SELECT o.sink, count(*) AS n, min(e.created_at) AS oldest FROM outbox AS o"
            " JOIN events AS e ON e.event_id = o.event_id"
            " WHERE o.status = 'pending' GROUP BY o.sink ORDER BY o.sink COLLATE \"C\""
        )
        return {str(r["sink"]): (int(r["n"]), r["oldest"]) for r in rows}

    async def outcome(self, event_id: str, sink: str) -> tuple[str, int, str]:
        """(status, attempts, last_error) of one outbox row; KeyError when there is none."""
        row = await self._fetchrow(
            "SELECT status, attempts, last_error FROM outbox WHERE event_id = $1 AND sink = $2",
            event_id,
            sink,
        )
        if row is None:
            raise KeyError(f"no outbox row for event {event_id} and sink {sink!r}")
        return str(row["status"]), int(row["attempts"]), str(row["last_error"])

    async def delivered_events(self, sink: str, since: datetime | None) -> list[Event]:
        """The events delivered to `sink` at or after `since` (None: all kept), oldest first."""
        rows = await self._fetch(
            "SELECT e.data FROM events AS e JOIN outbox AS o ON o.event_id = e.event_id"
            " WHERE o.sink = $1 AND o.status = 'delivered'"
            " AND ($2::timestamptz IS NULL OR o.done_at >= $2) ORDER BY e.seq",
            sink,
            optional_aware(since),
        )
        return [event_from_dict(json.loads(r["data"])) for r in rows]

    async def prune(self, *, older_than: datetime) -> int:
        """Delete events created before `older_than` with nothing pending; returns how many."""
        cutoff = aware(older_than)
        async with self._transaction() as conn:
            status = await conn.execute(
                "DELETE FROM events WHERE created_at < $1 AND NOT EXISTS ("
                " SELECT 1 FROM outbox AS o"
                " WHERE o.event_id = events.event_id AND o.status = 'pending')",
                cutoff,
            )
            await prune_trail(conn, cutoff)
        return rowcount(status)

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
        async with self._transaction(fenced=True) as conn:
            sent_in = await digest_id(conn, sink, digest, mark.now)
            at = optional_aware(mark.now)
            for event_id, next_at in retries:
                status = await conn.execute(
                    RETRY_AND_RECORD,
                    aware(next_at),
                    mark.answer,
                    event_id,
                    sink,
                    at,
                    mark.kind,
                    sent_in,
                )
                if check:
                    await _check_row(conn, status, event_id, sink)

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
        """Mark pending rows final (`mark.outcome`) and record each one's attempt; `check` (one
        row): a row that never existed is a KeyError."""
        moment = optional_aware(mark.now)
        async with self._transaction(fenced=True) as conn:
            sent_in = await digest_id(conn, sink, digest, mark.now)
            status = await conn.execute(
                FINISH_AND_RECORD,
                mark.outcome,
                int(attempted),
                mark.answer,
                moment,
                list(event_ids),
                sink,
                mark.kind,
                sent_in,
            )
            if check:
                await _check_row(conn, status, event_ids[0], sink)


async def _check_row(conn: Any, status: str, event_id: str, sink: str) -> None:
    """Raise KeyError when no outbox row exists at all (a finished row is not an error)."""
    if rowcount(status) == 1:
        return
    exists = await conn.fetchval(
        "SELECT 1 FROM outbox WHERE event_id = $1 AND sink = $2", event_id, sink
    )
    if exists is None:
        raise KeyError(f"no outbox row for event {event_id} and sink {sink!r}")


async def insert_events(
    conn: Any,
    target: str,
    events: Sequence[Event],
    *,
    sinks: Sequence[str],
    now: datetime,
    routing: Routing | None,
    cycle_id: str = "",
) -> list[Event]:
    """Insert a poll's events, their outbox rows and decisions (inside `commit_poll`'s
    transaction); returns the events that were new. A known `event_id` is skipped
    (`ON CONFLICT DO NOTHING`).
    """
    inserted: list[Event] = []
    outbox: list[tuple[str, str, datetime]] = []
    decisions: list[tuple[str, str, datetime, str]] = []
    for event in events:
        if event.target != target:
            raise ValueError(
                f"event {event.event_id} belongs to target {event.target!r}, not {target!r}"
            )
        new = await conn.fetchval(
            "INSERT INTO events (event_id, target, data, created_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (event_id) DO NOTHING RETURNING seq",
            event.event_id,
            target,
            json.dumps(event_to_dict(event)),
            now,
        )
        if new is None:
            continue
        inserted.append(event)
        plan = plan_record(routing(event) if routing is not None else [(s, now) for s in sinks])
        decisions.append(decision_row(event.event_id, plan, cycle_id=cycle_id, now=now))
        outbox += [(event.event_id, s, aware(at)) for s, at in earliest_per_sink(plan).items()]
    await write_decisions(conn, decisions)
    if outbox:
        await conn.executemany(
            "INSERT INTO outbox (event_id, sink, next_attempt_at) VALUES ($1, $2, $3)", outbox
        )
    return inserted
