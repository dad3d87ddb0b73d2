"""SQLite: the `SendLog` concern — table `sends`.

What the rows mean is in `monitor.store.contract_delivery.SendLog`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.store.sqlite.connection import SqliteBase, stamp, unstamp


class SqliteSendLog(SqliteBase):
    """Send times per sink over the shared connection."""

    async def record_send(self, sink: str, at: datetime, *, keep_s: float = 3600.0) -> None:
        """Remember that a message went to `sink` at `at`; forget its sends older than `keep_s`."""
        with self._transaction() as db:
            db.execute("INSERT INTO sends (sink, at) VALUES (?, ?)", (sink, stamp(at)))
            db.execute(
                "DELETE FROM sends WHERE sink = ? AND at < ?",
                (sink, stamp(at - timedelta(seconds=keep_s))),
            )

    async def recent_sends(self, sink: str, since: datetime) -> list[datetime]:
        """The send times of `sink` after `since`, oldest first (to rebuild a rate budget)."""
        rows = self._db.execute(
            "SELECT at FROM sends WHERE sink = ? AND at > ? ORDER BY at", (sink, stamp(since))
        ).fetchall()
        return [unstamp(row[0]) for row in rows]
