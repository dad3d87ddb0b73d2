"""`dli-monitor state check` as an operator runs it: a real process reading a real state file.

The command opens the file read-only: it reports the schema version (and whether this release
migrates, opens or refuses it), the integrity check, rows per table and pending deliveries
per sink, and leaves the file's bytes exactly as they were. Exit 0 when ok, 1 when the file
is corrupt, missing or from a newer release, 2 for an invalid config.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import yaml

from monitor.store import SCHEMA_VERSION, SqliteStore, open_store
from tests.cli_support import offline_config, run_cli
from tests.conftest import PROJECT
from tests.data import make_state_fixtures as v1


def write_config(tmp_path: Path, state: Path) -> Path:
    sinks = [{"name": "out", "type": "console"}]
    config = offline_config(PROJECT, sinks=sinks, state={"path": str(state)})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def commit_fixture_jobs(path: Path) -> None:
    """Write the fixture's jobs into a current state file, as the daemon would."""
    store = await open_store(path)
    try:
        await store.commit_poll("etl", upserts=v1.JOBS, removals=(), events=(), now=v1.T0)
    finally:
        await store.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_a_version_1_file_is_reported_as_to_be_migrated_and_left_unchanged(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.db"
    shutil.copyfile(v1.V1_PATH, state)
    before = digest(state)

    code, out, err = run_cli("state", "check", "--config", str(write_config(tmp_path, state)))

    assert code == 0, err
    assert f"path: {state}" in out
    assert f"size: {state.stat().st_size} bytes" in out
    assert f"schema version: 1 (older than {SCHEMA_VERSION}: will be migrated on the next" in out
    assert "integrity: ok" in out
    assert "  jobs: 3\n" in out
    assert "  outbox: 4\n" in out
    assert "poll_marks" not in out
    assert "pending outbox rows per sink:\n  hook: 2\n" in out
    assert out.endswith("state file ok\n")
    assert digest(state) == before
    assert user_version(state) == 1


def test_a_current_file_is_reported_ok(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    asyncio.run(commit_fixture_jobs(state))

    code, out, err = run_cli("state", "check", "--state", str(state))

    assert code == 0, err
    assert f"schema version: {SCHEMA_VERSION} (same as this release: ok)" in out
    assert "  poll_marks: 0\n  rule_marks: 0\n  sends: 0\n" in out
    assert "  jobs: 3\n" in out
    assert "pending outbox rows per sink: none" in out


def test_the_file_is_read_while_a_store_holds_it_open_with_rows_only_in_the_wal(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.db"
    store = SqliteStore.open(state)  # the daemon, holding the file open
    try:
        asyncio.run(
            store.commit_poll(
                "etl", upserts=v1.JOBS, removals=(), events=v1.EVENTS, sinks=("hook",), now=v1.T0
            )
        )
        code, out, err = run_cli("state", "check", "--state", str(state))
        assert asyncio.run(store.targets()) == ["etl"]  # the daemon's connection is still fine
    finally:
        asyncio.run(store.close())

    assert code == 0, err
    assert "bytes in -wal)" in out
    assert "  jobs: 3\n" in out
    assert "pending outbox rows per sink:\n  hook: 2\n" in out


def test_a_file_from_a_newer_release_exits_1_and_is_left_unchanged(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    shutil.copyfile(v1.V1_PATH, state)
    with closing(sqlite3.connect(state)) as db:
        db.execute("PRAGMA user_version = 99")
        db.commit()
    before = digest(state)

    code, out, _ = run_cli("state", "check", "--state", str(state))

    assert code == 1
    assert f"schema version: 99 (this release knows up to {SCHEMA_VERSION}: refused" in out
    assert "integrity: ok" in out
    assert out.endswith("state file NOT ok\n")
    assert digest(state) == before


def test_a_corrupt_file_exits_1_and_is_left_unchanged(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    data = v1.V1_PATH.read_bytes()
    state.write_bytes(data[: len(data) // 2])
    before = digest(state)

    code, out, _ = run_cli("state", "check", "--state", str(state))

    assert code == 1
    assert "integrity: FAILED" in out
    assert out.endswith("state file NOT ok\n")
    assert digest(state) == before


def test_a_file_that_is_not_sqlite_exits_1(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    state.write_text("not a database\n" * 100)

    code, out, _ = run_cli("state", "check", "--state", str(state))

    assert code == 1
    assert "file is not a database" in out


def test_a_missing_file_exits_1_and_is_not_created(tmp_path: Path) -> None:
    state = tmp_path / "nowhere" / "state.db"

    code, out, _ = run_cli("state", "check", "--config", str(write_config(tmp_path, state)))

    assert code == 1
    assert "no such file" in out
    assert not state.parent.exists()


def test_an_invalid_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"dli": {"endpoint": "not a url"}, "queues": []}))

    code, out, err = run_cli("state", "check", "--config", str(config))

    assert code == 2
    assert "dli.endpoint" in err
    assert out == ""
