"""SQLite: the `SilenceStore` concern — table `silences`.

What the rows mean is in `monitor.store.contract.SilenceStore`; the `Silence` value and its
validation are `monitor.models_silence`'s.
"""

from __future__ import annotations

from datetime import datetime

from monitor.models_silence import Silence
from monitor.store.sqlite.connection import SqliteBase, stamp, unstamp


class SqliteSilences(SqliteBase):
    """Silences over the shared connection."""

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
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO silences (job_name, queue, starts_at, ends_at, comment, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (job_name, queue, stamp(starts_at), stamp(ends_at), comment, stamp(starts_at)),
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

    async def list_silences(self) -> list[Silence]:
        """Every stored silence, expired ones included, oldest first."""
        rows = self._db.execute(
            "SELECT id, job_name, queue, starts_at, ends_at, comment FROM silences ORDER BY id"
        ).fetchall()
        return [_silence_from_row(row) for row in rows]

    async def active_silences(self, now: datetime) -> list[Silence]:
        """The silences in force at `now`, oldest first."""
        moment = stamp(now)
        rows = self._db.execute(
            "SELECT id, job_name, queue, starts_at, ends_at, comment FROM silences"
            " WHERE starts_at <= ? AND ends_at > ? ORDER BY id",
            (moment, moment),
        ).fetchall()
        return [_silence_from_row(row) for row in rows]

    async def expire_silence(self, silence_id: int, now: datetime) -> bool:
        """End a silence at `now`; False when it had already ended, KeyError when unknown."""
        moment = stamp(now)
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE silences SET ends_at = ?, starts_at = MIN(starts_at, ?)"
                " WHERE id = ? AND ends_at > ?",
                (moment, moment, silence_id, moment),
            )
            if cursor.rowcount == 1:
                return True
            if db.execute("SELECT 1 FROM silences WHERE id = ?", (silence_id,)).fetchone():
                return False
        raise KeyError(f"no silence with id {silence_id}")


def _silence_from_row(row: tuple[int, str, str | None, str, str, str]) -> Silence:
    silence_id, job_name, queue, starts_at, ends_at, comment = row
    return Silence(
        id=silence_id,
        job_name=job_name,
        queue=queue,
        starts_at=unstamp(starts_at),
        ends_at=unstamp(ends_at),
        comment=comment,
    )
