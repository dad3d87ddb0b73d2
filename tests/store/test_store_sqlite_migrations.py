"""SQLite only: opening older, newer, broken and new state files: migrations, refusals, modes.

A version-1 file (the committed fixture built by `tests/data/make_state_fixtures.py`) is
migrated on open and every row reads back through the `Store` API. A file from a newer
release, a truncated one and one that is not SQLite are refused and keep their exact bytes.
A new file and the directories made for it are private to the daemon's user.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.models import JobState, NameHistory, PollMark, RuleMark
from monitor.store import SCHEMA_VERSION, SqliteStore, StoreError
from monitor.store.sqlite import migrations as store_migrations
from tests.data import make_state_fixtures as v1
from tests.store.state_files import copy_of, digest, opened, schema_of, user_version

LATER = v1.T0 + timedelta(hours=1)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def v1_file(tmp_path: Path) -> Path:
    return copy_of(v1.V1_PATH, tmp_path)


# -- the version-1 fixture ------------------------------------------------------------------------


def test_the_committed_fixture_is_a_small_version_1_file_without_poll_marks(
    v1_file: Path,
) -> None:
    assert user_version(v1_file) == 1
    assert "poll_marks" not in {name for _, name, _ in schema_of(v1_file)}
    assert v1_file.stat().st_size < 32 * 1024


def test_the_committed_fixture_holds_what_the_script_builds(v1_file: Path, tmp_path: Path) -> None:
    rebuilt = tmp_path / "rebuilt.db"
    v1.build_v1(rebuilt)
    with closing(sqlite3.connect(v1_file)) as old, closing(sqlite3.connect(rebuilt)) as new:
        assert list(old.iterdump()) == list(new.iterdump())


async def test_opening_a_version_1_file_migrates_it_to_the_current_version(v1_file: Path) -> None:
    async with opened(v1_file):
        pass
    assert user_version(v1_file) == SCHEMA_VERSION
    assert "poll_marks" in {name for _, name, _ in schema_of(v1_file)}


async def test_a_migrated_file_has_exactly_the_schema_of_a_fresh_one(
    v1_file: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh.db"
    async with opened(v1_file), opened(fresh):
        pass
    assert schema_of(v1_file) == schema_of(fresh)


async def test_every_snapshot_row_of_a_version_1_file_reads_back_after_migration(
    v1_file: Path,
) -> None:
    async with opened(v1_file) as store:
        state = await store.load_target("etl")
        assert await store.targets() == ["etl"]
    assert state is not None
    assert state.baseline_at == v1.T0
    assert state.jobs == {job.id: job for job in v1.JOBS}


async def test_the_poll_mark_of_a_migrated_target_is_the_newest_stored_create_time(
    v1_file: Path,
) -> None:
    newest = max(job.create_time for job in v1.JOBS if job.create_time is not None)
    async with opened(v1_file) as store:
        assert await store.poll_mark("etl") == PollMark(high_water=newest, baseline_floor=None)
        assert await store.poll_mark("other") is None


async def test_every_outbox_row_of_a_version_1_file_reads_back_after_migration(
    v1_file: Path,
) -> None:
    hook_rows = [row for row in v1.OUTBOX if row.status == "pending"]
    async with opened(v1_file) as store:
        due = await store.due(LATER)
        summary = await store.outbox_summary()
        outcomes = {
            (row.event, row.sink): await store.outcome(v1.EVENTS[row.event].event_id, row.sink)
            for row in v1.OUTBOX
        }
        sends = await store.recent_sends("chat", v1.T0 - timedelta(hours=1))
    assert [(d.event, d.sink, d.attempts) for d in due] == [
        (v1.EVENTS[row.event], row.sink, row.attempts) for row in hook_rows
    ]
    assert summary == {"hook": (len(hook_rows), v1.EVENTS[0].observed_at)}
    assert outcomes == {
        (row.event, row.sink): (row.status, row.attempts, row.last_error) for row in v1.OUTBOX
    }
    assert sends == [at for sink, at in v1.SENDS if sink == "chat"]


async def test_silences_and_rule_memory_of_a_version_1_file_read_back_after_migration(
    v1_file: Path,
) -> None:
    async with opened(v1_file) as store:
        silences = await store.list_silences()
        memory = await store.load_rule_memory("etl")
    name, queue, starts, ends, comment = v1.SILENCE
    assert [(s.job_name, s.queue, s.starts_at, s.ends_at, s.comment) for s in silences] == [
        (name, queue, starts, ends, comment)
    ]
    assert memory.names == {
        name: NameHistory(name, tuple(durations), failures, outcome)
        for name, durations, failures, outcome in v1.HISTORY
    }
    assert memory.marks == {
        (job_id, rule): RuleMark(job_id, rule, anchor) for job_id, rule, anchor in v1.RULE_MARKS
    }


async def test_a_migrated_file_takes_new_polls_and_keeps_its_high_water(v1_file: Path) -> None:
    mark = PollMark(high_water=LATER, baseline_floor=None)
    async with opened(v1_file) as store:
        await store.commit_poll(
            "etl", upserts=(), removals=("job-starting",), events=(), now=LATER, mark=mark
        )
    async with opened(v1_file) as store:
        assert await store.poll_mark("etl") == mark
        state = await store.load_target("etl")
    assert state is not None and set(state.jobs) == {"job-running", "job-dead"}
    assert state.jobs["job-dead"].state is JobState.DEAD


async def test_migrating_a_second_time_changes_nothing(v1_file: Path) -> None:
    async with opened(v1_file):
        pass
    before = digest(v1_file)
    async with opened(v1_file):
        pass
    assert digest(v1_file) == before
    with closing(sqlite3.connect(v1_file, isolation_level=None)) as db:
        assert store_migrations.upgrade(db) == (SCHEMA_VERSION, SCHEMA_VERSION)
    assert digest(v1_file) == before


def test_a_failing_migration_step_is_rolled_back_whole(
    v1_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = store_migrations.Migration(2, "broken", ("CREATE TABLE poll_marks (x)", "NOT SQL"))
    monkeypatch.setitem(store_migrations._STEP_FROM, 1, broken)
    with pytest.raises(StoreError, match="migrating schema version 1 to 2 failed"):
        SqliteStore.open(v1_file)
    assert user_version(v1_file) == 1
    assert "poll_marks" not in {name for _, name, _ in schema_of(v1_file)}


def test_the_migration_steps_are_one_version_apart_up_to_the_schema_version() -> None:
    versions = [migration.version for migration in store_migrations.MIGRATIONS]
    first = store_migrations.FIRST_VERSION
    assert versions == list(range(first + 1, SCHEMA_VERSION + 1))


# -- new files ----------------------------------------------------------------------------------


async def test_a_fresh_file_gets_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with opened(path) as store:
        assert await store.poll_mark("etl") is None
    assert user_version(path) == SCHEMA_VERSION


async def test_an_empty_existing_file_gets_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.touch()
    async with opened(path):
        pass
    assert user_version(path) == SCHEMA_VERSION


@pytest.mark.parametrize("umask", [0o022, 0o000])
async def test_a_new_state_file_and_its_new_directories_are_private_to_the_user(
    tmp_path: Path, umask: int
) -> None:
    path = tmp_path / "var" / "lib" / "state.db"
    previous = os.umask(umask)
    try:
        async with opened(path) as store:
            await store.commit_poll("etl", upserts=v1.JOBS, removals=(), events=(), now=v1.T0)
            assert mode(Path(f"{path}-wal")) == 0o600  # exists, and is private
            assert mode(Path(f"{path}-shm")) == 0o600
    finally:
        os.umask(previous)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(path.parent.parent) == 0o700


async def test_an_existing_files_mode_is_left_alone(v1_file: Path) -> None:
    os.chmod(v1_file, 0o640)
    async with opened(v1_file):
        pass
    assert mode(v1_file) == 0o640


# -- refused files ------------------------------------------------------------------------------


def test_a_file_from_a_newer_release_is_refused_naming_both_versions_and_left_unchanged(
    v1_file: Path,
) -> None:
    with closing(sqlite3.connect(v1_file)) as db:
        db.execute("PRAGMA user_version = 99")
        db.commit()
    before = digest(v1_file)
    with pytest.raises(
        StoreError, match=rf"schema version 99.*only knows version {SCHEMA_VERSION}"
    ):
        SqliteStore.open(v1_file)
    assert digest(v1_file) == before
    assert user_version(v1_file) == 99


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated-half"),
        pytest.param(lambda data: data[:100], id="header-only"),
        pytest.param(lambda data: b"this is not sqlite at all\n" * 200, id="text"),
        pytest.param(lambda data: b"SQLite format 3\0" + b"\xff" * 2000, id="bad-header"),
    ],
)
def test_a_broken_or_foreign_file_is_refused_and_left_unchanged(
    tmp_path: Path, content: Callable[[bytes], bytes]
) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(content(v1.V1_PATH.read_bytes()))
    before = digest(path)
    with pytest.raises(StoreError, match=r"state\.db is (not a usable SQLite database|corrupt)"):
        SqliteStore.open(path)
    assert digest(path) == before
