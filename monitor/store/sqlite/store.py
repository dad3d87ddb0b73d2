"""`SqliteStore`: every concern's SQLite mixin composed over one connection to one file.

The concerns live beside this module, one each (`snapshots`, `rules`, `outbox`, `sends`,
`silences`, `trail`); opening, migrating and refusing the file is `file`'s. This class only
opens (for use, or read-only beside a running daemon), names and closes the connection they
share.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from monitor.store.sqlite.file import open_read_only, open_state_file
from monitor.store.sqlite.outbox import SqliteOutbox
from monitor.store.sqlite.rules import SqliteRuleMemory
from monitor.store.sqlite.sends import SqliteSendLog
from monitor.store.sqlite.silences import SqliteSilences
from monitor.store.sqlite.snapshots import SqliteSnapshots
from monitor.store.sqlite.trail import SqliteTrail


class SqliteStore(
    SqliteSnapshots, SqliteRuleMemory, SqliteOutbox, SqliteSendLog, SqliteSilences, SqliteTrail
):
    """The `Store` contract in one SQLite file (or `:memory:`); every write is one transaction."""

    def __init__(self, connection: sqlite3.Connection, path: str) -> None:
        """Wrap an open connection whose schema is in place; use `SqliteStore.open` instead."""
        self._db = connection
        self._path = path

    @classmethod
    def open(cls, path: str | Path) -> SqliteStore:
        """Open the state file (created private to this user), set WAL, migrate it to this version.

        A missing file is created 0600 in a directory created 0700; an existing file keeps its
        mode. A file that is not SQLite, is corrupt or is from a newer release is refused with
        `StoreError` before anything is written to it.
        """
        name = str(path)
        return cls(open_state_file(name), name)

    @classmethod
    def open_read_only(cls, path: str | Path) -> SqliteStore:
        """Open an existing state file of this release's version for reading only.

        Safe beside the daemon that has it open: nothing is created, migrated or written (every
        write raises `StoreWriteError`). `StoreError` when the file is missing, is not SQLite,
        or has another schema version (an older one is migrated when the daemon next starts).
        """
        name = str(path)
        return cls(open_read_only(name), name)

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for SQLite-only tools and tests (never for the monitor itself)."""
        return self._db

    async def close(self) -> None:
        """Close the file; committed data is already durable."""
        self._db.close()

    def __repr__(self) -> str:
        return f"SqliteStore({self._path!r})"
