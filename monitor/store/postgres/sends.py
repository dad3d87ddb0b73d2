"""PostgreSQL: the `SendLog` concern — table `sends`.

What the rows mean is in `monitor.store.contract_delivery.SendLog`; the SQLite twin is
`monitor.store.sqlite.sends`. Not fenced: a send that happened is recorded whoever leads now.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.store.postgres.connection import PostgresBase, aware


class PostgresSendLog(PostgresBase):
    """Send times per sink over the shared pool."""

    async def record_send(self, sink: str, at: datetime, *, keep_s: float = 3600.0) -> None:
        """Remember that a message went to `sink` at `at`; forget its sends older than `keep_s`."""
        moment = aware(at)
        async with self._transaction() as conn:
            await conn.execute("INSERT INTO sends (sink, at) VALUES ($1, $2)", sink, moment)
            await conn.execute(
                "DELETE FROM sends WHERE sink = $1 AND at < $2",
                sink,
                moment - timedelta(seconds=keep_s),
            )

    async def recent_sends(self, sink: str, since: datetime) -> list[datetime]:
        """The send times of `sink` after `since`, oldest first (to rebuild a rate budget)."""
        rows = await self._fetch(
            "SELECT at FROM sends WHERE sink = $1 AND at > $2 ORDER BY at", sink, aware(since)
        )
        return [r["at"] for r in rows]
