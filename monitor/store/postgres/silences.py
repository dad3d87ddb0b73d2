"""PostgreSQL: the `SilenceStore` concern — table `silences`.

What the rows mean is in `monitor.store.contract.SilenceStore`; the `Silence` value and its
validation are `monitor.models_silence`'s; the SQLite twin is `monitor.store.sqlite.silences`.
Not fenced: operators add and expire silences from any replica or the command line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.models_silence import Silence
from monitor.store.postgres.connection import PostgresBase, aware

_COLUMNS = "id, job_name, queue, starts_at, ends_at, comment"


class PostgresSilences(PostgresBase):
    """Silences over the shared pool."""

    async def add_silence(
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
        start, end = aware(starts_at), aware(ends_at)
        async with self._transaction() as conn:
            silence_id = await conn.fetchval(
                "INSERT INTO silences (job_name, queue, starts_at, ends_at, comment, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $3) RETURNING id",
                job_name,
                queue,
                start,
                end,
                comment,
            )
        return Silence(
            id=int(silence_id),
            job_name=job_name,
            queue=queue,
            starts_at=starts_at,
            ends_at=ends_at,
            comment=comment,
        )

    async def list_silences(self) -> list[Silence]:
        """Every stored silence, expired ones included, oldest first."""
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM silences ORDER BY id")
        return [_silence_from_row(r) for r in rows]

    async def active_silences(self, now: datetime) -> list[Silence]:
        """The silences in force at `now`, oldest first."""
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM silences WHERE starts_at <= $1 AND ends_at > $1 ORDER BY id",
            aware(now),
        )
        return [_silence_from_row(r) for r in rows]

    async def expire_silence(self, silence_id: int, now: datetime) -> bool:
        """End a silence at `now`; False when it had already ended, KeyError when unknown."""
        moment = aware(now)
        async with self._transaction() as conn:
            ended = await conn.fetchval(
                "UPDATE silences SET ends_at = $1, starts_at = LEAST(starts_at, $1)"
                " WHERE id = $2 AND ends_at > $1 RETURNING id",
                moment,
                silence_id,
            )
            known = ended is not None or await conn.fetchval(
                "SELECT 1 FROM silences WHERE id = $1", silence_id
            )
        if ended is not None:
            return True
        if known:
            return False
        raise KeyError(f"no silence with id {silence_id}")


def _silence_from_row(row: Any) -> Silence:
    return Silence(
        id=int(row["id"]),
        job_name=str(row["job_name"]),
        queue=row["queue"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        comment=str(row["comment"]),
    )
