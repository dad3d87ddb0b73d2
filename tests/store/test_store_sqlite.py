"""SQLite only: the file `open_store` makes — WAL, `synchronous=FULL`, the schema version —
what it refuses, and how a full disk surfaces (`StoreWriteError`, nothing half-written).

Migrations, file modes and broken files are in `test_store_sqlite_migrations.py`.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.store import SCHEMA_VERSION, SqliteStore, StoreError, StoreWriteError, open_store
from tests.store.support import T0, commit, event, job


async def test_the_file_uses_wal_full_sync_and_records_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = await open_store(path)
    assert isinstance(store, SqliteStore)
    assert store.connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    await store.close()
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_a_file_from_a_newer_monitor_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with closing(sqlite3.connect(path)) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}.*newer monitor"):
        await open_store(path)


async def test_a_file_that_is_not_a_database_is_refused_with_a_clear_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite, it is a text file that is long enough" * 20)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        await open_store(path)


async def test_a_full_disk_is_a_store_write_error_and_the_commit_is_rolled_back(
    tmp_path: Path,
) -> None:
    store = SqliteStore.open(tmp_path / "state.db")
    try:
        await commit(store, [], upserts=(job("a"),))
        pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
        store.connection.execute(f"PRAGMA max_page_count = {pages}")
        many = tuple(job(f"j{n:04d}", log_tail=("x" * 200,)) for n in range(300))
        with pytest.raises(StoreWriteError, match="state file"):
            await commit(store, [event("a")], upserts=many, now=T0 + timedelta(minutes=1))
        state = await store.load_target("etl")
        assert state is not None and list(state.jobs) == ["a"]
        assert await store.pending_by_sink() == {}
    finally:
        await store.close()


async def test_an_in_memory_store_works_for_tests() -> None:
    store = await open_store(":memory:")
    try:
        assert await commit(store, [event("a")]) == [event("a")]
        assert repr(store) == "SqliteStore(':memory:')"
    finally:
        await store.close()
