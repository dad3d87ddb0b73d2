"""PostgreSQL: the `SnapshotStore` concern — tables `targets`, `jobs`, `poll_marks` — and the one
transaction of `commit_poll`, which also writes the outbox's, the rule memory's and the trail's
rows through their modules' helpers (`outbox.insert_events`, `rules.write_history`,
`trail.write_sightings`).

`commit_poll` is fenced: with a fence provider, the lease is checked first inside its
transaction, so a deposed leader commits nothing. What the rows mean is in
`monitor.store.contract.SnapshotStore`; the SQLite twin is `monitor.store.sqlite.snapshots`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from monitor.codec import job_from_dict, job_to_dict
from monitor.models import Event, HistoryUpdate, Job, JobState, PollMark
from monitor.models_explain import Sighting
from monitor.store.postgres.connection import PostgresBase, aware, optional_aware
from monitor.store.postgres.outbox import insert_events
from monitor.store.postgres.rules import write_history
from monitor.store.postgres.trail import write_sightings
from monitor.store.types import Routing, TargetState

_TERMINAL = [state.value for state in JobState if state.is_terminal]


class PostgresSnapshots(PostgresBase):
    """Snapshots, poll marks and `commit_poll` over the shared pool."""

    async def load_target(
        self, target: str, *, ended_since: datetime | None = None
    ) -> TargetState | None:
        """The stored snapshot of a target, or None until its first commit (no baseline yet).

        With `ended_since`, only what incremental polling keeps in memory: every job not in a
        terminal state, and terminal ones that reached it at or after `ended_since`.
        """
        row = await self._fetchrow("SELECT baseline_at FROM targets WHERE target = $1", target)
        if row is None:
            return None
        if ended_since is None:
            rows = await self._fetch("SELECT job_id, data FROM jobs WHERE target = $1", target)
        else:
            rows = await self._fetch(
                "SELECT job_id, data FROM jobs WHERE target = $1"
                " AND (NOT (data->>'state' = ANY($2::text[]))"
                " OR (data->>'state_since')::timestamptz >= $3)",
                target,
                _TERMINAL,
                aware(ended_since),
            )
        jobs = {str(r["job_id"]): job_from_dict(json.loads(r["data"])) for r in rows}
        return TargetState(jobs=jobs, baseline_at=row["baseline_at"])

    async def count_jobs(self, target: str) -> dict[tuple[str, str], int]:
        """Stored jobs of a target per (queue, state)."""
        rows = await self._fetch(
            "SELECT data->>'queue' AS queue, data->>'state' AS state, count(*) AS n"
            " FROM jobs WHERE target = $1 GROUP BY 1, 2",
            target,
        )
        return {(str(r["queue"]), str(r["state"])): int(r["n"]) for r in rows}

    async def lookup_jobs(self, target: str, job_ids: Collection[str]) -> dict[str, Job]:
        """The stored records of those of `job_ids` the target knows (history included)."""
        ids = list(job_ids)
        if not ids:
            return {}
        rows = await self._fetch(
            "SELECT job_id, data FROM jobs WHERE target = $1 AND job_id = ANY($2::text[])",
            target,
            ids,
        )
        return {str(r["job_id"]): job_from_dict(json.loads(r["data"])) for r in rows}

    async def poll_mark(self, target: str) -> PollMark | None:
        """Where incremental polling of a target stands, or None before its first commit.

        A target baselined by full listings (or migrated from an old state file) has no row:
        its high water is then the newest `create_time` stored for it, with no baseline floor.
        """
        row = await self._fetchrow(
            "SELECT high_water, baseline_floor FROM poll_marks WHERE target = $1", target
        )
        if row is not None:
            return PollMark(high_water=row["high_water"], baseline_floor=row["baseline_floor"])
        row = await self._fetchrow(
            "SELECT t.target, (SELECT max((j.data->>'create_time')::timestamptz) FROM jobs AS j"
            "  WHERE j.target = t.target) AS newest"
            " FROM targets AS t WHERE t.target = $1",
            target,
        )
        if row is None:
            return None
        return PollMark(high_water=row["newest"], baseline_floor=None)

    async def targets(self) -> list[str]:
        """Every target that has a baseline, sorted (by code point, as SQLite sorts)."""
        rows = await self._fetch('SELECT target FROM targets ORDER BY target COLLATE "C"')
        return [str(r["target"]) for r in rows]

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
        outbox rows and decisions, rule memory, poll mark and sightings in one transaction,
        which (when fenced) first checks that this process still holds the lease.
        """
        moment = aware(now)
        latest = {job.id: json.dumps(job_to_dict(job)) for job in upserts}
        gone = list(removals)
        async with self._transaction(fenced=True) as conn:
            await conn.execute(
                "INSERT INTO targets (target, baseline_at, polled_at) VALUES ($1, $2, $2)"
                " ON CONFLICT (target) DO UPDATE SET polled_at = excluded.polled_at",
                target,
                moment,
            )
            await _write_jobs(conn, target, latest, gone)
            await write_sightings(conn, target, sightings)
            inserted = await insert_events(
                conn, target, events, sinks=sinks, now=moment, routing=routing, cycle_id=cycle_id
            )
            if history is not None:
                await write_history(conn, target, history)
            if mark is not None:
                await conn.execute(
                    "INSERT INTO poll_marks (target, high_water, baseline_floor)"
                    " VALUES ($1, $2, $3) ON CONFLICT (target) DO UPDATE SET"
                    " high_water = excluded.high_water, baseline_floor = excluded.baseline_floor",
                    target,
                    optional_aware(mark.high_water),
                    optional_aware(mark.baseline_floor),
                )
        return inserted


async def _write_jobs(conn: Any, target: str, latest: dict[str, str], gone: list[str]) -> None:
    """Upsert the jobs (one row per id, the last record given wins), then delete removals."""
    if latest:
        await conn.execute(
            "INSERT INTO jobs (target, job_id, data)"
            " SELECT $1, j.id, j.data FROM unnest($2::text[], $3::jsonb[]) AS j (id, data)"
            " ON CONFLICT (target, job_id) DO UPDATE SET data = excluded.data",
            target,
            list(latest),
            list(latest.values()),
        )
    if gone:
        await conn.execute(
            "DELETE FROM jobs WHERE target = $1 AND job_id = ANY($2::text[])", target, gone
        )
