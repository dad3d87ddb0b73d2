"""The state file's schema and the ordered migrations that bring an older file up to date.

`PRAGMA user_version` says which schema a file has. Version 0 (a fresh file, or one from before
versioning) gets the current `SCHEMA` in one go; a file at version N-1 gets the `Migration` to
N, one transaction per step with the `user_version` bump inside it, so a crash leaves a file at
one version or the next. To change the schema: edit `SCHEMA`, append a `Migration`, and commit
a fixture of the previous version under `tests/data/` (see `make_state_fixtures.py` there).

What lives elsewhere: the pragmas, the checks before anything is written (a newer or corrupt
file is refused) and the `StoreError` wording, all in `monitor.store.sqlite.file`; what the
tables mean, in `monitor.store.contract`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

_POLL_MARKS = """
CREATE TABLE IF NOT EXISTS poll_marks (
    target         TEXT PRIMARY KEY,
    high_water     TEXT,
    baseline_floor TEXT
)"""

_TRAIL = (
    """CREATE TABLE IF NOT EXISTS job_sightings (
    target   TEXT NOT NULL,
    job_id   TEXT NOT NULL,
    seen_at  TEXT NOT NULL,
    state    TEXT NOT NULL,
    job_name TEXT NOT NULL DEFAULT '',
    queue    TEXT NOT NULL DEFAULT '',
    cycle_id TEXT NOT NULL DEFAULT '',
    baseline INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (target, job_id, seen_at, state)
) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS sightings_by_job ON job_sightings (job_id)",
    "CREATE INDEX IF NOT EXISTS sightings_by_name ON job_sightings (job_name, seen_at)",
    """CREATE TABLE IF NOT EXISTS decisions (
    event_id   TEXT PRIMARY KEY REFERENCES events (event_id) ON DELETE CASCADE,
    cycle_id   TEXT NOT NULL DEFAULT '',
    decided_at TEXT NOT NULL,
    data       TEXT NOT NULL
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS digests (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sink            TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    sent_at         TEXT NOT NULL,
    size            INTEGER NOT NULL,
    UNIQUE (sink, notification_id, sent_at)
)""",
    """CREATE TABLE IF NOT EXISTS attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL REFERENCES events (event_id) ON DELETE CASCADE,
    sink            TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    at              TEXT,
    outcome         TEXT NOT NULL
                    CHECK (outcome IN ('delivered', 'retry', 'failed', 'deferred')),
    answer          TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL DEFAULT '',
    next_attempt_at TEXT,
    digest_id       INTEGER
)""",
    "CREATE INDEX IF NOT EXISTS attempts_by_event ON attempts (event_id, sink)",
    "CREATE INDEX IF NOT EXISTS events_by_job ON events (json_extract(data, '$.job.id'))",
)
"""Version 3: what `dli-monitor explain` reads (sightings, decisions, attempts, digests)."""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS targets (
    target      TEXT PRIMARY KEY,
    baseline_at TEXT NOT NULL,
    polled_at   TEXT NOT NULL
);
{_POLL_MARKS};
CREATE TABLE IF NOT EXISTS jobs (
    target TEXT NOT NULL,
    job_id TEXT NOT NULL,
    data   TEXT NOT NULL,
    PRIMARY KEY (target, job_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL UNIQUE,
    target     TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    event_id        TEXT NOT NULL REFERENCES events (event_id) ON DELETE CASCADE,
    sink            TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    done_at         TEXT,
    PRIMARY KEY (event_id, sink)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS sends (
    sink TEXT NOT NULL,
    at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sends_by_sink ON sends (sink, at);
CREATE TABLE IF NOT EXISTS job_history (
    target       TEXT NOT NULL,
    job_name     TEXT NOT NULL,
    durations    TEXT NOT NULL DEFAULT '[]',
    failures     INTEGER NOT NULL DEFAULT 0,
    last_outcome TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (target, job_name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rule_marks (
    target TEXT NOT NULL,
    job_id TEXT NOT NULL,
    rule   TEXT NOT NULL,
    anchor TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (target, job_id, rule)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_name   TEXT NOT NULL,
    queue      TEXT,
    starts_at  TEXT NOT NULL,
    ends_at    TEXT NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
{";".join(_TRAIL)};
"""
"""The current schema, written whole into a version-0 file."""


@dataclass(frozen=True, slots=True)
class Migration:
    """The SQL that turns a file of version `version - 1` into one of version `version`."""

    version: int
    summary: str
    statements: tuple[str, ...]


FIRST_VERSION = 1
"""The schema of the first release; older files do not exist (0 means fresh)."""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(2, "poll_marks: where incremental polling of a target stands", (_POLL_MARKS,)),
    Migration(3, "job_sightings, decisions, attempts, digests: what explain reads", _TRAIL),
)
"""Every step after the first release, oldest first, one version apart."""

SCHEMA_VERSION = MIGRATIONS[-1].version if MIGRATIONS else FIRST_VERSION
"""The version this release writes (the last migration's)."""

_STEP_FROM = {migration.version - 1: migration for migration in MIGRATIONS}


class SchemaVersionError(Exception):
    """The file's version cannot be migrated from (newer than this release, or negative)."""

    def __init__(self, version: int) -> None:
        """Remember the file's version."""
        super().__init__(f"schema version {version}, this release knows 1 to {SCHEMA_VERSION}")
        self.version = version


def read_version(connection: sqlite3.Connection) -> int:
    """The file's `PRAGMA user_version` (0 for a fresh file)."""
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


def upgrade(connection: sqlite3.Connection) -> tuple[int, int]:
    """Bring the file to `SCHEMA_VERSION`, one transaction per step; returns (from, to).

    The version is re-read inside each write transaction, so two processes opening the same
    file at once migrate it once. Raises `SchemaVersionError` (before writing anything) for a
    file from a newer release, and `sqlite3.Error` when a step fails (that step is rolled back).
    """
    start = read_version(connection)
    while True:
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = read_version(connection)
            if version > SCHEMA_VERSION or version < 0:
                raise SchemaVersionError(version)
            if version == SCHEMA_VERSION:
                connection.execute("COMMIT")
                return start, version
            if version == 0:
                statements, version = tuple(SCHEMA.split(";")), SCHEMA_VERSION
            else:
                step = _STEP_FROM[version]
                statements, version = step.statements, step.version
            for statement in statements:
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version}")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
