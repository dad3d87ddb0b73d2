"""The state file as a file: creating it private, refusing one that cannot be used, migrating
it on open, and inspecting it read-only (`dli-monitor state check`).

`open_state_file` returns a connection whose schema is at this release's version (see
`monitor.store_migrations`), or raises `StoreError` before anything was written to a file that
is not SQLite, is corrupt, or comes from a newer release. What the tables mean and every read
and write of rows is `monitor.store`'s.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from monitor import store_migrations

SCHEMA_VERSION = store_migrations.SCHEMA_VERSION


class StoreError(Exception):
    """The state file cannot be used (newer schema, not a database, unreadable)."""


class StoreWriteError(StoreError):
    """A write to the state file failed (disk full, read-only, I/O error) and was rolled back."""


def open_state_file(name: str) -> sqlite3.Connection:
    """Open (creating it private) and migrate the state file; `StoreError` when unusable."""
    if name != ":memory:" and not _create_private(Path(name)):
        _refuse_unusable(name)
    try:
        connection = sqlite3.connect(name, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open state file {name}: {exc}") from exc
    try:
        _prepare(connection, name)
    except BaseException:
        connection.close()
        raise
    return connection


def _prepare(connection: sqlite3.Connection, name: str) -> None:
    """Set the pragmas and migrate the file to this version (`monitor.store_migrations`)."""
    try:
        connection.execute("PRAGMA busy_timeout = 5000")
        version = store_migrations.read_version(connection)
        if not 0 <= version <= SCHEMA_VERSION:
            raise StoreError(_version_refused(name, version))
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"state file {name} is not a usable SQLite database: {exc}") from exc
    try:
        store_migrations.upgrade(connection)
    except store_migrations.SchemaVersionError as exc:
        raise StoreError(_version_refused(name, exc.version)) from exc
    except sqlite3.Error as exc:
        raise StoreError(
            f"state file {name}: migrating schema version {version} to {SCHEMA_VERSION} failed"
            f" and was rolled back: {exc}"
        ) from exc


def _version_refused(name: str, version: int) -> str:
    if version < 0:
        return f"state file {name} has an invalid schema version {version}; it was not changed"
    return (
        f"state file {name} has schema version {version}, but this monitor only knows version"
        f" {SCHEMA_VERSION}; run a newer monitor or use another file (it was not changed)"
    )


def _create_private(path: Path) -> bool:
    """Create the missing directories (0700) and an empty file (0600); False when it exists."""
    missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        directory.chmod(0o700)  # the umask filters mkdir's mode
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, 0o600)  # SQLite gives its -wal and -shm files this mode too
    finally:
        os.close(fd)
    return True


def _read_only(name: str) -> sqlite3.Connection:
    """A connection that cannot write, migrate or create the file (works beside the daemon)."""
    return sqlite3.connect(Path(name).absolute().as_uri() + "?mode=ro", uri=True)


def _refuse_unusable(name: str) -> None:
    """Raise `StoreError`, before any write, when the file is not SQLite, corrupt or newer."""
    try:
        with closing(_read_only(name)) as db:
            version = store_migrations.read_version(db)
            if not 0 <= version <= SCHEMA_VERSION:
                raise StoreError(_version_refused(name, version))
            problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(5)")]
    except sqlite3.Error as exc:
        raise StoreError(f"state file {name} is not a usable SQLite database: {exc}") from exc
    if problems != ["ok"]:
        raise StoreError(
            f"state file {name} is corrupt ({'; '.join(problems)}); it was not changed: see"
            f" `dli-monitor state check --state {name}`, then restore a backup or move it away"
        )


@dataclass(frozen=True, slots=True)
class StateReport:
    """A state file as `inspect_state` found it, read without changing anything."""

    path: str
    size: int | None
    """Bytes of the main file; None when there is no such file."""
    wal_size: int
    version: int | None
    """`PRAGMA user_version`; None when the file could not be read as SQLite."""
    problems: tuple[str, ...]
    """What `PRAGMA integrity_check` reported, or why the file could not be read."""
    rows: dict[str, int]
    pending: dict[str, int]
    """Pending outbox rows per sink."""

    @property
    def ok(self) -> bool:
        """True when the file passed the integrity check and this release can open it."""
        known = self.version is not None and 0 <= self.version <= SCHEMA_VERSION
        return known and not self.problems

    def lines(self) -> list[str]:
        """The report as `dli-monitor state check` prints it, one line per fact."""
        if self.size is None:
            return [f"path: {self.path}", "no such file (the daemon creates it when it starts)"]
        wal = f" (+{self.wal_size} bytes in -wal)" if self.wal_size else ""
        shown = [f"  {problem}" for problem in self.problems[:10]]
        if len(self.problems) > 10:
            shown.append(f"  ... and {len(self.problems) - 10} more")
        return [
            f"path: {self.path}",
            f"size: {self.size} bytes{wal}",
            f"schema version: {self._compatibility()}",
            "integrity: " + ("ok" if not self.problems else "FAILED"),
            *shown,
            "rows per table:" + ("" if self.rows else " unknown"),
            *(f"  {table}: {count}" for table, count in self.rows.items()),
            "pending outbox rows per sink:" + ("" if self.pending else " none"),
            *(f"  {sink}: {count}" for sink, count in self.pending.items()),
            "state file ok" if self.ok else "state file NOT ok",
        ]

    def _compatibility(self) -> str:
        version, current = self.version, SCHEMA_VERSION
        if version is None:
            return "unknown (not readable)"
        if version == 0:
            return f"0 (empty: the version-{current} schema will be created on the next start)"
        if 0 < version < current:
            return f"{version} (older than {current}: will be migrated on the next start)"
        if version == current:
            return f"{version} (same as this release: ok)"
        return f"{version} (this release knows up to {current}: refused, needs a newer monitor)"


def inspect_state(path: str | Path) -> StateReport:
    """Check a state file read-only: never creates, migrates or writes it (safe while it runs)."""
    name = str(Path(path).absolute())
    file, wal = Path(name), Path(name + "-wal")
    if not file.is_file():
        return StateReport(name, None, 0, None, ("no such file",), {}, {})
    version: int | None = None
    problems: tuple[str, ...] = ()
    rows: dict[str, int] = {}
    pending: dict[str, int] = {}
    try:
        with closing(_read_only(name)) as db:
            version = store_migrations.read_version(db)
            check = [str(row[0]) for row in db.execute("PRAGMA integrity_check")]
            problems = () if check == ["ok"] else tuple(check)
            for (table,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall():
                quoted = '"' + str(table).replace('"', '""') + '"'
                rows[table] = int(db.execute(f"SELECT COUNT(*) FROM {quoted}").fetchone()[0])
            if "outbox" in rows:
                pending = dict(
                    db.execute(
                        "SELECT sink, COUNT(*) FROM outbox WHERE status = 'pending'"
                        " GROUP BY sink ORDER BY sink"
                    ).fetchall()
                )
    except sqlite3.Error as exc:
        problems = (*problems, f"cannot be read as SQLite: {exc}")
    size = file.stat().st_size
    wal_size = wal.stat().st_size if wal.is_file() else 0
    return StateReport(name, size, wal_size, version, problems, rows, pending)
