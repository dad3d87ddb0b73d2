"""SQLite only: a version-2 state file (the committed fixture) migrated to version 3, the trail.

Version 3 adds what `dli-monitor explain` reads (`job_sightings`, `decisions`, `attempts`,
`digests`). The fixture is built by `tests/data/make_state_fixtures.py` as the version-2 release
wrote files; opening it migrates it in place, every row reads back, `explain` answers from what
an older release left (events without decisions, jobs without sightings), and new polls and
deliveries fill the trail. Read-only opening refuses the old file (and leaves it as it was),
since only the daemon migrates.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.explain import explain
from monitor.models import JobState, PollMark
from monitor.models_explain import Sighting
from monitor.store import SCHEMA_VERSION, StoreError, open_reader
from tests.data import make_state_fixtures as fixtures
from tests.store.state_files import copy_of, digest, opened, schema_of, tables, user_version

LATER = fixtures.T0 + timedelta(hours=1)
TRAIL = {"job_sightings", "decisions", "attempts", "digests"}


@pytest.fixture
def v2_file(tmp_path: Path) -> Path:
    return copy_of(fixtures.V2_PATH, tmp_path)


def test_the_committed_fixture_is_a_small_version_2_file_without_the_trail(
    v2_file: Path, tmp_path: Path
) -> None:
    assert user_version(v2_file) == 2
    assert "poll_marks" in tables(v2_file) and not TRAIL & tables(v2_file)
    assert v2_file.stat().st_size < 32 * 1024
    rebuilt = tmp_path / "rebuilt.db"
    fixtures.build_v2(rebuilt)
    with closing(sqlite3.connect(v2_file)) as old, closing(sqlite3.connect(rebuilt)) as new:
        assert list(old.iterdump()) == list(new.iterdump())


async def test_opening_a_version_2_file_adds_the_trail_and_matches_a_fresh_schema(
    v2_file: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh.db"
    async with opened(v2_file), opened(fresh):
        pass
    assert SCHEMA_VERSION == 3 and user_version(v2_file) == 3
    assert tables(v2_file) >= TRAIL
    assert schema_of(v2_file) == schema_of(fresh)


async def test_every_row_of_a_version_2_file_reads_back_after_migration(v2_file: Path) -> None:
    target, high_water, floor = fixtures.POLL_MARK
    async with opened(v2_file) as store:
        state = await store.load_target("etl")
        mark = await store.poll_mark(target)
        outcomes = {
            (row.event, row.sink): await store.outcome(
                fixtures.EVENTS[row.event].event_id, row.sink
            )
            for row in fixtures.OUTBOX
        }
        silences = await store.list_silences()
    assert state is not None and state.jobs == {job.id: job for job in fixtures.JOBS}
    assert mark == PollMark(high_water=high_water, baseline_floor=floor)
    assert outcomes == {
        (row.event, row.sink): (row.status, row.attempts, row.last_error) for row in fixtures.OUTBOX
    }
    assert [s.comment for s in silences] == [fixtures.SILENCE[4]]


async def test_explain_answers_from_what_the_older_release_left(v2_file: Path) -> None:
    async with opened(v2_file):
        pass  # the daemon migrates it
    store = await open_reader(v2_file)
    try:
        found = await explain(store, "job-dead", now=LATER)
    finally:
        await store.close()
    assert found is not None
    (run,) = found.runs
    assert (run.name, run.state, run.sightings) == ("hourly_report", "dead", ())
    (event,) = run.events
    assert event.routing is None
    by_sink = {sink.sink: sink for sink in event.sinks}
    assert by_sink["chat"].reason == "delivered at 2026-11-29 10:00:01Z (attempt 1)"
    assert by_sink["hook"].attempts == () and by_sink["hook"].status == "pending"


async def test_a_migrated_file_keeps_a_trail_of_new_polls_and_deliveries(v2_file: Path) -> None:
    dead = fixtures.JOBS[1]
    async with opened(v2_file) as store:
        sighting = Sighting("etl", "job-starting", JobState.RUNNING, LATER, cycle_id="c9")
        await store.commit_poll(
            "etl", upserts=(), removals=(), events=(), now=LATER, sightings=[sighting]
        )
        await store.mark_delivered(fixtures.EVENTS[0].event_id, "hook", LATER)
    async with opened(v2_file) as store:
        (starting,) = await store.job_trails("job-starting")
        (trail,) = await store.job_trails(dead.id)
    assert starting.sightings == (sighting,)
    hook = [a for a in trail.events[0].attempts if a.sink == "hook"]
    assert [(a.attempt, a.outcome, a.at) for a in hook] == [(2, "delivered", LATER)]


async def test_reading_an_unmigrated_file_is_refused_and_leaves_it_as_it_was(
    v2_file: Path,
) -> None:
    before = digest(v2_file)
    with pytest.raises(StoreError, match=r"schema version 2; .* migrates it to when it next"):
        await open_reader(v2_file)
    assert digest(v2_file) == before
    with pytest.raises(StoreError, match="no state file"):
        await open_reader(v2_file.parent / "missing.db")
    assert not (v2_file.parent / "missing.db").exists()
