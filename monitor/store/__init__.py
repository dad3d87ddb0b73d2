"""The monitor's state: snapshots, rule memory, the outbox, send times and silences.

One contract per concern (`monitor.store.contract`: `SnapshotStore`, `RuleMemoryStore`,
`Outbox`, `SendLog`, `SilenceStore`, and `Store`, all of them), the values and errors they
share (`monitor.store.types`), and the backends behind them: `monitor.store.sqlite` (the
default, one local file). The central promise is `Store.commit_poll`: a poll's snapshot rows,
events, outbox rows, rule memory and poll mark are written in ONE transaction.

The store takes nothing from the layers above it: the types it persists are domain values
(`monitor.models`, `monitor.models_silence`), their JSON shape is `monitor.codec`'s.
"""

from __future__ import annotations

from pathlib import Path

from monitor.store.contract import (
    Outbox,
    RuleMemoryStore,
    SendLog,
    SilenceStore,
    SnapshotStore,
    Store,
)
from monitor.store.sqlite import SCHEMA_VERSION, SqliteStore
from monitor.store.types import (
    DELIVERED,
    FAILED,
    PENDING,
    Delivery,
    Routing,
    StoreError,
    StoreWriteError,
    TargetState,
)

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
    "StoreWriteError",
    "TargetState",
    "open_store",
]
"""`SCHEMA_VERSION` is the SQLite file's (`PRAGMA user_version`): an older file is migrated on
open, a newer, corrupt or non-SQLite one is refused with `StoreError` and left untouched."""


async def open_store(location: str | Path) -> Store:
    """Open the store at `location`: a SQLite file path (or `:memory:`).

    The one place that picks a backend from where the state lives; `StoreError` when it cannot
    be used. Close it with `await store.close()`.
    """
    return SqliteStore.open(location)
