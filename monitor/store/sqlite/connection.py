"""The one SQLite connection every concern of the backend shares, its transactions, and times.

`SqliteBase` is the base of each concern's mixin (`snapshots`, `rules`, `outbox`, `sends`,
`silences`); `SqliteStore` (`monitor.store.sqlite.store`) composes them over one connection.
Times are stored as fixed-width UTC text (`stamp`), so that string order is time order in SQL.

The methods are `async` for the store contract but run the `sqlite3` calls directly on the
event loop's thread: a local file answers in milliseconds. None of them awaits anything inside
a transaction, so two coroutines never interleave on the connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from monitor.codec import format_time
from monitor.store.types import StoreWriteError


def stamp(moment: datetime) -> str:
    """A fixed-width UTC timestamp, so that string order is time order in SQL."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: the store only accepts timezone-aware times")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def unstamp(text: str) -> datetime:
    """The aware UTC time a `stamp` (or an RFC 3339 text) stands for."""
    return datetime.fromisoformat(text).astimezone(UTC)


def optional_time(moment: datetime | None) -> str | None:
    """RFC 3339 text (`monitor.codec.format_time`), or None."""
    return None if moment is None else format_time(moment)


class SqliteBase:
    """The shared connection (autocommit mode) and the file's name, for error messages."""

    _db: sqlite3.Connection
    _path: str

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK and re-raise on any error."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # full disk, read-only file, I/O error, lock
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreWriteError(f"state file {self._path}: {exc}") from exc
