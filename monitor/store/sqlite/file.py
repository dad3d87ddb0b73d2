"""The state file as a file: creating it private, refusing one that cannot be used, and
migrating it on open.

`open_state_file` returns a connection whose schema is at this release's version (see
`monitor.store.sqlite.migrations`), with WAL and `synchronous=FULL`, or raises `StoreError`
before anything was written to a file that is not SQLite, is corrupt, or comes from a newer
release. Inspecting a file read-only (`dli-monitor state check`) is
`monitor.store.sqlite.inspect`'s; what the tables mean is `monitor.store.contract`'s, and every
read and write of rows is in the concern modules beside this one.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing, suppress
from pathlib import Path

from monitor.store.sqlite import migrations
from monitor.store.types import StoreError

SCHEMA_VERSION = migrations.SCHEMA_VERSION
"""The version this release writes (`PRAGMA user_version`)."""


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
    """Set the pragmas and migrate the file to this version (`migrations.upgrade`)."""
    try:
        connection.execute("PRAGMA busy_timeout = 5000")
        version = migrations.read_version(connection)
        if not 0 <= version <= SCHEMA_VERSION:
            raise StoreError(version_refused(name, version))
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"state file {name} is not a usable SQLite database: {exc}") from exc
    try:
        migrations.upgrade(connection)
    except migrations.SchemaVersionError as exc:
        raise StoreError(version_refused(name, exc.version)) from exc
    except sqlite3.Error as exc:
        with suppress(sqlite3.Error):  # the steps before the failing one stay committed
            version = migrations.read_version(connection)
        raise StoreError(
            f"state file {name}: migrating schema version {version} to {version + 1} failed"
            f" and was rolled back: {exc}"
        ) from exc


def version_refused(name: str, version: int) -> str:
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


def read_only(name: str) -> sqlite3.Connection:
    """A connection that cannot write, migrate or create the file (works beside the daemon)."""
    return sqlite3.connect(Path(name).absolute().as_uri() + "?mode=ro", uri=True)


def open_read_only(name: str) -> sqlite3.Connection:
    """A read-only connection to an existing file at exactly `SCHEMA_VERSION`; `StoreError`
    otherwise (the file is left as it is)."""
    if name == ":memory:" or not Path(name).is_file():
        raise StoreError(f"no state file at {name}")
    try:
        connection = read_only(name)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open state file {name}: {exc}") from exc
    connection.isolation_level = None  # autocommit, as `open_state_file`'s
    try:
        connection.execute("PRAGMA busy_timeout = 5000")
        connection.execute("PRAGMA query_only = ON")
        version = migrations.read_version(connection)
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise StoreError(f"state file {name} is not a usable SQLite database: {exc}") from exc
    if version != SCHEMA_VERSION:
        connection.close()
        if 0 < version < SCHEMA_VERSION:
            raise StoreError(
                f"state file {name} has schema version {version}; reading it needs version"
                f" {SCHEMA_VERSION}, which the daemon migrates it to when it next starts"
            )
        raise StoreError(version_refused(name, version))
    return connection


def _refuse_unusable(name: str) -> None:
    """Raise `StoreError`, before any write, when the file is not SQLite, corrupt or newer."""
    try:
        with closing(read_only(name)) as db:
            version = migrations.read_version(db)
            if not 0 <= version <= SCHEMA_VERSION:
                raise StoreError(version_refused(name, version))
            problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(5)")]
    except sqlite3.Error as exc:
        raise StoreError(f"state file {name} is not a usable SQLite database: {exc}") from exc
    if problems != ["ok"]:
        raise StoreError(
            f"state file {name} is corrupt ({'; '.join(problems)}); it was not changed: see"
            f" `dli-monitor state check --state {name}`, then restore a backup or move it away"
        )
