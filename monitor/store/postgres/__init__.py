"""The PostgreSQL backend of the store: one database shared by a leader and its standbys.

One module per concern of the contract (`snapshots`, `rules`, `outbox`, `sends`, `silences`,
`trail`), each holding the SQL of its tables; `connection` (the shared asyncpg pool,
transactions, the fence check and error mapping), `schema` (the tables and their version),
`bulk` (filling an empty database in one transaction, for `monitor.store.migrate`), `namespace`
(the PostgreSQL schema one shard's tables live in), and `store` (`PostgresStore`, all of them
composed). Every SQL text that differs from SQLite's lives in this package.

Fencing: opened with a fence provider (`monitor.leader`'s lease), `commit_poll`, the outbox
claim (`due`) and the outbox's state changes first run `check_fence` inside their own
transaction, and raise `StoreFencedOff` without writing when this process no longer leads.
"""

from __future__ import annotations

from monitor.store.postgres.connection import FenceProvider, HoldsFence
from monitor.store.postgres.namespace import ensure_namespace, schema_name, schema_settings
from monitor.store.postgres.schema import SCHEMA_VERSION
from monitor.store.postgres.store import PostgresStore

__all__ = [
    "SCHEMA_VERSION",
    "FenceProvider",
    "HoldsFence",
    "PostgresStore",
    "ensure_namespace",
    "schema_name",
    "schema_settings",
]
