"""Build the committed state files of older schema versions, as the releases that wrote them did.

`state-v1.db` is a version-1 file: the schema of the first release (every table of today but
`poll_marks` and the trail), written with that release's pragmas, holding a few rows of every
kind. `state-v2.db` is a version-2 file: version 1 plus `poll_marks` (no `job_sightings`,
`decisions`, `attempts`, `digests` yet), holding the same rows, events with their project, and a
poll mark. The constants below are what they hold, so the migration tests can check that each
row survives. The schema text here is frozen on purpose: never import today's schema into this
file.

Regenerate (only when a fixture must change; commit the .db):
`python -m tests.data.make_state_fixtures`
"""

from __future__ import annotations

import json
import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.codec import event_to_dict, job_to_dict
from monitor.models import Event, EventKind, Job, JobState, event_id_for

HERE = Path(__file__).resolve().parent
V1_PATH = HERE / "state-v1.db"
V2_PATH = HERE / "state-v2.db"

V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS targets (
    target      TEXT PRIMARY KEY,
    baseline_at TEXT NOT NULL,
    polled_at   TEXT NOT NULL
);
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
"""
"""The version-1 schema exactly as the first release created it."""

V2_POLL_MARKS = """
CREATE TABLE IF NOT EXISTS poll_marks (
    target         TEXT PRIMARY KEY,
    high_water     TEXT,
    baseline_floor TEXT
);
"""
"""What version 2 added to version 1, exactly as its migration created it."""

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
"""When the fixture's target was baselined."""

JOBS = (
    Job(
        id="job-running",
        state=JobState.RUNNING,
        queue="etl",
        name="nightly_etl",
        owner="bob",
        app_id="application_1700000000000_0042",
        sc_type="A",
        raw_state="running",
        create_time=T0 - timedelta(hours=1),
        update_time=T0 - timedelta(minutes=5),
        log_tail=("stage 3/7",),
        state_since=T0 - timedelta(minutes=50),
    ),
    Job(
        id="job-dead",
        state=JobState.DEAD,
        queue="etl",
        name="hourly_report",
        raw_state="dead",
        create_time=T0 - timedelta(minutes=30),
        update_time=T0 - timedelta(minutes=2),
        duration_ms=1_680_000,
        log_tail=("java.lang.OutOfMemoryError",),
        state_since=T0 - timedelta(minutes=2),
    ),
    Job(id="job-starting", state=JobState.STARTING, queue="etl", state_since=T0),
)
"""The snapshot of target `etl`; the newest `create_time` is the high water after migration."""

EVENTS = (
    Event(
        event_id=event_id_for(
            "etl", "job-dead", EventKind.TRANSITION, JobState.RUNNING, JobState.DEAD, T0
        ),
        kind=EventKind.TRANSITION,
        target="etl",
        job=JOBS[1],
        from_state=JobState.RUNNING,
        to_state=JobState.DEAD,
        observed_at=T0,
        streak=2,
    ),
    Event(
        event_id=event_id_for("etl", "job-running", EventKind.STUCK, None, None, T0),
        kind=EventKind.STUCK,
        target="etl",
        job=JOBS[0],
        from_state=None,
        to_state=JobState.RUNNING,
        observed_at=T0 + timedelta(minutes=1),
        detail="in starting for 17m (limit 15m)",
    ),
)


@dataclass(frozen=True)
class OutboxRow:
    """One outbox row of the fixture."""

    event: int
    sink: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str = ""
    done_at: datetime | None = None


OUTBOX = (
    OutboxRow(0, "hook", "pending", 1, T0 + timedelta(seconds=30), "HTTP 503"),
    OutboxRow(0, "chat", "delivered", 1, T0, done_at=T0 + timedelta(seconds=1)),
    OutboxRow(1, "hook", "pending", 0, T0 + timedelta(minutes=1)),
    OutboxRow(1, "chat", "failed", 3, T0, "HTTP 400", T0 + timedelta(minutes=2)),
)

SENDS = (("chat", T0 + timedelta(seconds=1)),)

HISTORY = (("nightly_etl", [600.0, 620.5], 0, "success"), ("hourly_report", [], 2, "failure"))
"""(job name, durations in seconds, consecutive failures, last outcome) of target `etl`."""

RULE_MARKS = (("job-running", "stuck", T0 + timedelta(minutes=1)), ("job-dead", "overdue", None))
"""(job id, rule, anchor) of target `etl`."""

SILENCE = ("hourly_.*", "etl", T0, T0 + timedelta(hours=2), "known flaky")
"""(job name, queue, starts, ends, comment)."""

POLL_MARK = ("etl", T0 - timedelta(minutes=5), T0 - timedelta(hours=1))
"""(target, high water, baseline floor) of the version-2 file."""


def stamp(moment: datetime) -> str:
    """The store's fixed-width UTC timestamp."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def v1_event(event: Event) -> dict[str, object]:
    """An event as the first release stored it: without `project` and `region`."""
    data = event_to_dict(event)
    for key in ("project", "region"):
        data.pop(key, None)
    return data


def build_v1(path: Path) -> None:
    """Write a version-1 state file at `path` (replacing it) holding the rows above."""
    _build(path, V1_SCHEMA, version=1)


def build_v2(path: Path) -> None:
    """Write a version-2 state file at `path` (replacing it): the rows above and a poll mark."""
    _build(path, V1_SCHEMA + V2_POLL_MARKS, version=2)


def _build(path: Path, schema: str, *, version: int) -> None:
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA page_size = 512")  # a small fixture; page size is not the format
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("BEGIN IMMEDIATE")
        for statement in schema.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {version}")
        db.execute("COMMIT")
        _insert_rows(db, version)
        db.execute("VACUUM")
    finally:
        db.close()


def _insert_rows(db: sqlite3.Connection, version: int) -> None:
    db.execute("BEGIN IMMEDIATE")
    db.execute(
        "INSERT INTO targets VALUES (?, ?, ?)",
        ("etl", stamp(T0), stamp(T0 + timedelta(minutes=10))),
    )
    for job in JOBS:
        db.execute(
            "INSERT INTO jobs VALUES (?, ?, ?)", ("etl", job.id, json.dumps(job_to_dict(job)))
        )
    for event in EVENTS:
        db.execute(
            "INSERT INTO events (event_id, target, data, created_at) VALUES (?, ?, ?, ?)",
            (event.event_id, "etl", json.dumps(_event(event, version)), stamp(event.observed_at)),
        )
    for row in OUTBOX:
        db.execute(
            "INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                EVENTS[row.event].event_id,
                row.sink,
                row.status,
                row.attempts,
                stamp(row.next_attempt_at),
                row.last_error,
                None if row.done_at is None else stamp(row.done_at),
            ),
        )
    db.executemany("INSERT INTO sends VALUES (?, ?)", ((s, stamp(at)) for s, at in SENDS))
    for name, durations, failures, outcome in HISTORY:
        db.execute(
            "INSERT INTO job_history VALUES (?, ?, ?, ?, ?)",
            ("etl", name, json.dumps(durations), failures, outcome),
        )
    for job_id, rule, anchor in RULE_MARKS:
        db.execute(
            "INSERT INTO rule_marks VALUES (?, ?, ?, ?)",
            ("etl", job_id, rule, "" if anchor is None else stamp(anchor)),
        )
    name, queue, starts, ends, comment = SILENCE
    db.execute(
        "INSERT INTO silences (job_name, queue, starts_at, ends_at, comment, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (name, queue, stamp(starts), stamp(ends), comment, stamp(starts)),
    )
    if version >= 2:
        target, high_water, floor = POLL_MARK
        db.execute(
            "INSERT INTO poll_marks VALUES (?, ?, ?)", (target, stamp(high_water), stamp(floor))
        )
    db.execute("COMMIT")


def _event(event: Event, version: int) -> dict[str, object]:
    """An event as the release of `version` stored it."""
    return v1_event(event) if version == 1 else event_to_dict(event)


def main() -> int:
    """Rebuild every fixture next to this script."""
    for build, path in ((build_v1, V1_PATH), (build_v2, V2_PATH)):
        build(path)
        sys.stdout.write(f"wrote {path} ({path.stat().st_size} bytes)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
