"""The monitor's state: snapshots, rule memory, the outbox, send times, silences and the trail.

One contract per concern (`monitor.store.contract`: `SnapshotStore`, `RuleMemoryStore`,
`SilenceStore`, `TrailStore`, and `Store`, all of them; `monitor.store.contract_delivery`:
`Outbox`, `SendLog`), the values and errors they share (`monitor.store.types`), and the backends
behind them: `monitor.store.sqlite` (the default, one local file) and `monitor.store.postgres`
(one database shared by a leader and its standbys, writes fenced by the leader lease). The
central promise is `Store.commit_poll`: a poll's snapshot rows, events, outbox rows, decisions,
sightings, rule memory and poll mark are written in ONE transaction. `open_reader` opens a store
only to read it (`dli-monitor explain`).

The store takes nothing from the layers above it: the types it persists are domain values
(`monitor.models`, `monitor.models_silence`, `monitor.models_explain`), their JSON shape is
`monitor.codec`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from monitor.store.contract import (
    RuleMemoryStore,
    SilenceStore,
    SnapshotStore,
    Store,
    TrailStore,
)
from monitor.store.contract_delivery import Outbox, SendLog
from monitor.store.sqlite import SCHEMA_VERSION, SqliteStore
from monitor.store.types import (
    DELIVERED,
    FAILED,
    PENDING,
    Delivery,
    Routing,
    StoreError,
    StoreFencedOff,
    StoreWriteError,
    TargetState,
)

if TYPE_CHECKING:
    from monitor.store.postgres import FenceProvider

__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "SCHEMA_VERSION",
    "Delivery",
    "Outbox",
    "Routing",
    "RuleMemoryStore",
    "SendLog",
    "SilenceStore",
    "SnapshotStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreFencedOff",
    "StoreWriteError",
    "TargetState",
    "TrailStore",
    "is_postgres_url",
    "open_reader",
    "open_store",
]
"""`SCHEMA_VERSION` is the SQLite file's (`PRAGMA user_version`): an older file is migrated on
open, a newer, corrupt or non-SQLite one is refused with `StoreError` and left untouched."""


POSTGRES_SCHEMES = ("postgresql://", "postgres://")
"""How a `postgresql://` location is told from a file path."""


def is_postgres_url(location: str | Path) -> bool:
    """True when `location` is a PostgreSQL URL rather than a SQLite file path."""
    return isinstance(location, str) and location.lower().startswith(POSTGRES_SCHEMES)


async def open_store(
    location: str | Path,
    *,
    password: str | None = None,
    fence: FenceProvider | None = None,
    idle_in_transaction_timeout: float | None = None,
    schema: str | None = None,
) -> Store:
    """Open the store at `location`: a `postgresql://user@host:port/db` URL, or a SQLite file
    path (or `:memory:`).

    The one place that picks a backend from where the state lives; `StoreError` when it cannot
    be used. `password` (kept out of the URL) and `fence` (a leader lease's fence provider,
    see `monitor.store.postgres`) are for PostgreSQL only: a `ValueError` with a path. So are
    `idle_in_transaction_timeout` and `schema` (the PostgreSQL schema the tables live in, one
    per shard; see `PostgresStore.open`). Close the store with `await store.close()`.
    """
    if is_postgres_url(location):
        from monitor.store.postgres import PostgresStore

        return await PostgresStore.open(
            str(location),
            password=password,
            fence=fence,
            idle_in_transaction_timeout=idle_in_transaction_timeout,
            schema=schema,
        )
    postgres_only = (password, fence, idle_in_transaction_timeout, schema)
    if any(option is not None for option in postgres_only):
        raise ValueError(
            "a password, a fence or a schema needs a postgresql:// URL, not a SQLite file"
        )
    return SqliteStore.open(location)


async def open_reader(
    location: str | Path, *, password: str | None = None, schema: str | None = None
) -> Store:
    """Open the store at `location` only to read it, beside a daemon that may be using it.

    A SQLite file is opened read-only (`SqliteStore.open_read_only`: nothing is created,
    migrated or written; a file of another schema version is a `StoreError`); PostgreSQL is
    opened as `open_store` does, and only read. Close it with `await store.close()`.
    """
    if is_postgres_url(location):
        return await open_store(location, password=password, schema=schema)
    if password is not None or schema is not None:
        raise ValueError("a password or a schema needs a postgresql:// URL, not a SQLite file")
    return SqliteStore.open_read_only(location)
