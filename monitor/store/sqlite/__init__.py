"""The SQLite backend of the store: one local file, stdlib `sqlite3`, WAL and `synchronous=FULL`.

One module per concern of the contract (`snapshots`, `rules`, `outbox`, `sends`, `silences`,
`trail`), each holding the SQL of its tables; `connection` (the shared connection and
transactions), `file` (creating, refusing, migrating the file, or opening it read-only),
`migrations` (the schema and its versions), `inspect` (the read-only `state check`), and
`store` (`SqliteStore`, all of them composed).
"""

from __future__ import annotations

from monitor.store.sqlite.file import SCHEMA_VERSION
from monitor.store.sqlite.inspect import StateReport, inspect_state
from monitor.store.sqlite.store import SqliteStore

__all__ = ["SCHEMA_VERSION", "SqliteStore", "StateReport", "inspect_state"]
