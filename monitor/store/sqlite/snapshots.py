"""SQLite: the `SnapshotStore` concern — tables `targets`, `jobs`, `poll_marks` — and the one
transaction of `commit_poll`, which also writes the outbox's, the rule memory's and the trail's
rows through their modules' helpers (`outbox.insert_events`, `rules.write_history`,
`trail.write_sightings`).

What the rows mean is in `monitor.store.contract.SnapshotStore`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta

from monitor.codec import format_time, job_from_dict, job_to_dict, parse_time
from monitor.models import Event, HistoryUpdate, Job, JobState, PollMark
from monitor.models_explain import Sighting
from monitor.store.sqlite.connection import SqliteBase, optional_time, stamp, unstamp
from monitor.store.sqlite.outbox import insert_events
from monitor.store.sqlite.rules import write_history
from monitor.store.sqlite.trail import write_sightings
from monitor.store.types import Routing, TargetState

_TERMINAL = tuple(state.value for state in JobState if state.is_terminal)

_CHUNK = 500
"""Job ids per `IN (...)` lookup, well below SQLite's bound-parameter limit."""


class SqliteSnapshots(SqliteBase):
    """Snapshots, poll marks and `commit_poll` over the shared connection."""

    async def load_target(
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
        return TargetState(jobs=jobs, baseline_at=unstamp(row[0]))

    async def count_jobs(self, target: str) -> dict[tuple[str, str], int]:
        """Stored jobs of a target per (queue, state)."""
        rows = self._db.execute(
            "SELECT json_extract(data, '$.queue'), json_extract(data, '$.state'), COUNT(*)"
            " FROM jobs WHERE target = ? GROUP BY 1, 2",
            (target,),
        )
        return {(str(queue), str(state)): int(count) for queue, state, count in rows}

    async def lookup_jobs(self, target: str, job_ids: Collection[str]) -> dict[str, Job]:
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

    async def poll_mark(self, target: str) -> PollMark | None:
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

    async def targets(self) -> list[str]:
        """Every target that has a baseline, sorted."""
        return [row[0] for row in self._db.execute("SELECT target FROM targets ORDER BY target")]

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
        """Write one poll's outcome atomically; returns the events that were new (not duplicates).

        The promise is `SnapshotStore.commit_poll`'s: snapshot rows, the baseline mark, events,
        outbox rows and decisions, rule memory, poll mark and sightings in one
        `BEGIN IMMEDIATE` transaction.
        """
        moment = stamp(now)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO targets (target, baseline_at, polled_at) VALUES (?, ?, ?)"
                " ON CONFLICT (target) DO UPDATE SET polled_at = excluded.polled_at",
                (target, moment, moment),
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
            write_sightings(db, target, sightings)
            inserted = insert_events(
                db, target, events, sinks=sinks, now=now, routing=routing, cycle_id=cycle_id
            )
            if history is not None:
                write_history(db, target, history)
            if mark is not None:
                db.execute(
                    "INSERT INTO poll_marks (target, high_water, baseline_floor) VALUES (?, ?, ?)"
                    " ON CONFLICT (target) DO UPDATE SET high_water = excluded.high_water,"
                    " baseline_floor = excluded.baseline_floor",
                    (target, optional_time(mark.high_water), optional_time(mark.baseline_floor)),
                )
        return inserted


def _since(job: Job, moment: datetime) -> bool:
    """True when the job has been in its state since `moment` or later."""
    return job.state_since is not None and job.state_since >= moment
