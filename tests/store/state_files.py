"""Looking at SQLite state files from outside the store, for the migration tests: their bytes,
`user_version`, schema and tables, a fixture's private copy, and a store opened on one."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

from monitor.store import SqliteStore


def digest(path: Path) -> str:
    """The file's bytes, hashed: a refused file must keep them exactly."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def schema_of(path: Path) -> set[tuple[str, str, str]]:
    """Every table, index and trigger with its SQL: a migrated file must match a fresh one."""
    with closing(sqlite3.connect(path)) as db:
        return set(db.execute("SELECT type, name, COALESCE(sql, '') FROM sqlite_master"))


def tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as db:
        return {str(row[0]) for row in db.execute("SELECT name FROM sqlite_master")}


def copy_of(fixture: Path, tmp_path: Path) -> Path:
    """A private copy of a committed state file, to migrate without touching the original."""
    path = tmp_path / "state.db"
    shutil.copyfile(fixture, path)
    return path


@asynccontextmanager
async def opened(path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore.open(path)
    try:
        yield store
    finally:
        await store.close()
