"""Moving the state from a SQLite file into an empty PostgreSQL store (`dli-monitor state migrate`).

`migrate_sqlite_to_postgres` opens the file as the daemon would (an older file is upgraded in
place first; a newer or corrupt one is refused), reads every table inside one read transaction
(a consistent snapshot), turns the file's text times and JSON into PostgreSQL's types, and hands
the rows to `PostgresStore.import_rows`, which copies them in ONE transaction into a database that
must hold no state yet. It then counts the rows on both sides: `MigrationReport` says per table
what the file held and what PostgreSQL holds now, and whether they match.

What lives elsewhere: the PostgreSQL side of the copy (`monitor.store.postgres.bulk`), the
tables' meaning (`monitor.store.contract`), the command's arguments (`monitor.cli`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from monitor.store.postgres import PostgresStore
from monitor.store.postgres.bulk import IDENTITY_COLUMNS, TableRows
from monitor.store.postgres.connection import describe
from monitor.store.postgres.schema import STORE_TABLES
from monitor.store.sqlite import SqliteStore
from monitor.store.sqlite.connection import unstamp
from monitor.store.types import StoreError

Convert = Callable[[object], object]


def _time(value: object) -> datetime:
    return unstamp(str(value))


def _optional_time(value: object) -> datetime | None:
    return unstamp(str(value)) if value else None  # NULL, or '' for a rule mark without anchor


def _durations(value: object) -> list[float]:
    return [float(d) for d in json.loads(str(value))]


def _same(value: object) -> object:
    return value


def _flag(value: object) -> bool:
    return bool(value)


COLUMNS: dict[str, tuple[tuple[str, Convert], ...]] = {
    "targets": (("target", _same), ("baseline_at", _time), ("polled_at", _time)),
    "poll_marks": (
        ("target", _same),
        ("high_water", _optional_time),
        ("baseline_floor", _optional_time),
    ),
    "jobs": (("target", _same), ("job_id", _same), ("data", _same)),
    "events": (
        ("event_id", _same),
        ("seq", _same),
        ("target", _same),
        ("data", _same),
        ("created_at", _time),
    ),
    "outbox": (
        ("event_id", _same),
        ("sink", _same),
        ("status", _same),
        ("attempts", _same),
        ("next_attempt_at", _time),
        ("last_error", _same),
        ("done_at", _optional_time),
    ),
    "sends": (("sink", _same), ("at", _time)),
    "job_history": (
        ("target", _same),
        ("job_name", _same),
        ("durations", _durations),
        ("failures", _same),
        ("last_outcome", _same),
    ),
    "rule_marks": (
        ("target", _same),
        ("job_id", _same),
        ("rule", _same),
        ("anchor", _optional_time),
    ),
    "silences": (
        ("id", _same),
        ("job_name", _same),
        ("queue", _same),
        ("starts_at", _time),
        ("ends_at", _time),
        ("comment", _same),
        ("created_at", _time),
    ),
    "job_sightings": (
        ("target", _same),
        ("job_id", _same),
        ("seen_at", _time),
        ("state", _same),
        ("job_name", _same),
        ("queue", _same),
        ("cycle_id", _same),
        ("baseline", _flag),
    ),
    "decisions": (
        ("event_id", _same),
        ("cycle_id", _same),
        ("decided_at", _time),
        ("data", _same),
    ),
    "digests": (
        ("id", _same),
        ("sink", _same),
        ("notification_id", _same),
        ("sent_at", _time),
        ("size", _same),
    ),
    "attempts": (
        ("id", _same),
        ("event_id", _same),
        ("sink", _same),
        ("attempt", _same),
        ("at", _optional_time),
        ("outcome", _same),
        ("answer", _same),
        ("kind", _same),
        ("next_attempt_at", _optional_time),
        ("digest_id", _same),
    ),
}
"""Per table, the columns copied and how a SQLite value becomes a PostgreSQL one."""


class MigrationError(StoreError):
    """The state could not be migrated; nothing was written to PostgreSQL."""


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What `migrate_sqlite_to_postgres` copied: rows per table at the source and the target."""

    source: str
    target: str
    counts: tuple[tuple[str, int, int], ...]
    """(table, rows in the SQLite file, rows in PostgreSQL after the copy), in copy order."""

    @property
    def ok(self) -> bool:
        """True when every table holds as many rows in PostgreSQL as in the file."""
        return all(source == target for _, source, target in self.counts)

    def lines(self) -> list[str]:
        """The report as `dli-monitor state migrate` prints it."""
        width = max(len(table) for table, _, _ in self.counts)
        return [
            f"copied {self.source} to {self.target} in one transaction",
            *(
                f"  {table:<{width}}  sqlite {source:>8}  postgresql {target:>8}"
                + ("" if source == target else "  MISMATCH")
                for table, source, target in self.counts
            ),
            "row counts match" if self.ok else "row counts DIFFER: do not use the new database",
        ]


async def migrate_sqlite_to_postgres(
    source: str | Path, url: str, *, password: str | None = None, schema: str | None = None
) -> MigrationReport:
    """Copy every table of the SQLite state file `source` into the empty PostgreSQL store at
    `url` (in `schema`, one shard's, when given), in one transaction; `MigrationError` (or
    `StoreError`) when it cannot, and then nothing was written. Stop the daemon first: rows it
    writes later are not copied."""
    name = str(source)
    sqlite_store = _open_source(name)
    try:
        target = await PostgresStore.open(url, password=password, schema=schema)
        try:
            counts = await _copy(sqlite_store.connection, target)
            after = await target.row_counts()
        finally:
            await target.close()
    finally:
        await sqlite_store.close()
    return MigrationReport(
        source=name,
        target=describe(url, schema),
        counts=tuple((table, counts[table], after[table]) for table in STORE_TABLES),
    )


def _open_source(name: str) -> SqliteStore:
    """The state file, opened (and upgraded) as the daemon would; it must exist."""
    if name == ":memory:" or not Path(name).is_file():
        raise MigrationError(f"no state file at {name}")
    return SqliteStore.open(name)


async def _copy(db: sqlite3.Connection, target: PostgresStore) -> dict[str, int]:
    """Copy inside one read transaction of the file (a consistent snapshot); the file's counts."""
    db.execute("BEGIN")
    try:
        counts = {table: _count(db, table) for table in STORE_TABLES}
        tables = {
            table: TableRows([c for c, _ in COLUMNS[table]], _rows(db, table))
            for table in STORE_TABLES
        }
        await target.import_rows(tables, id_floors=_id_floors(db))
    finally:
        db.execute("ROLLBACK")
    return counts


def _count(db: sqlite3.Connection, table: str) -> int:
    return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _rows(db: sqlite3.Connection, table: str) -> Iterator[Sequence[object]]:
    """The table's rows in PostgreSQL's types, read lazily while they are copied."""
    columns = COLUMNS[table]
    cursor = db.execute(f"SELECT {', '.join(c for c, _ in columns)} FROM {table}")
    for row in cursor:
        try:
            yield tuple(convert(value) for (_, convert), value in zip(columns, row, strict=True))
        except (ValueError, TypeError) as exc:  # a malformed time or durations list
            raise MigrationError(f"table {table}: a row cannot be copied ({exc})") from exc


def _id_floors(db: sqlite3.Connection) -> dict[str, int]:
    """The highest id SQLite ever handed out per AUTOINCREMENT table (`sqlite_sequence`)."""
    try:
        rows = db.execute("SELECT name, seq FROM sqlite_sequence").fetchall()
    except sqlite3.OperationalError:  # no AUTOINCREMENT table was ever written
        return {}
    return {str(name): int(seq) for name, seq in rows if name in IDENTITY_COLUMNS}
