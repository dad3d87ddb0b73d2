"""`state migrate`: a SQLite state file copied into an empty PostgreSQL store in one transaction.

A file holding rows of every table (snapshots of two targets, a poll mark, events with outbox
rows pending, retried, deferred, delivered and failed, an event already pruned, send times,
silences, rule memory, sightings, decisions, attempts and a digest) is migrated into a fresh
database (`pg_dsn`); then every read of the store contract must answer the same from both, and
the next writes must too (ids and order carry on).
A database that already holds state is refused and left as it was.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.models import HistoryUpdate, JobState, NameHistory, Notification, PollMark, RuleMark
from monitor.models_explain import Sighting
from monitor.store import Store, open_store
from monitor.store.migrate import MigrationError, migrate_sqlite_to_postgres
from monitor.store.postgres import PostgresStore
from monitor.store.postgres.bulk import TargetNotEmpty
from monitor.store.postgres.schema import STORE_TABLES
from tests.cli_support import run_cli
from tests.data import make_state_fixtures as v1
from tests.store.support import T0, commit, event, job

LATER = T0 + timedelta(minutes=10)
FAR = T0 + timedelta(days=30)


async def fill(store: Store) -> None:
    """Rows of every table, in every state the contract knows."""
    history = HistoryUpdate(
        names=(NameHistory("nightly", (60.0, 90.5, 1e-3), 2, "failure"),),
        marks_added=(RuleMark("a", "stuck", T0), RuleMark("b", "overdue", None)),
    )
    jobs = (
        job("a", create_time=T0),
        job("b", JobState.DEAD, state_since=LATER),
        job("c", JobState.SUCCESS, state_since=T0 - timedelta(days=2), log_tail=("x", "ü")),
    )
    old = event("old")
    seen = [Sighting("etl", j.id, j.state, T0, j.name, j.queue, "c0", baseline=True) for j in jobs]
    await store.commit_poll(
        "etl", upserts=jobs, removals=(), events=[old], sinks=("hook",), now=T0, sightings=seen
    )
    await store.mark_delivered(old.event_id, "hook", T0)
    await store.prune(older_than=T0 + timedelta(seconds=1))  # its seq is gone, not reusable
    events = [event("a"), event("b"), event("c"), event("d")]
    await store.commit_poll(
        "etl",
        upserts=(),
        removals=(),
        events=events,
        sinks=("hook", "chat"),
        now=T0,
        history=history,
        cycle_id="c1",
    )
    await store.mark_delivered(events[0].event_id, "hook", T0)
    await store.mark_failed(events[1].event_id, "chat", reason="HTTP 400", now=T0)
    await store.mark_retry(events[2].event_id, "hook", next_attempt_at=LATER, reason="HTTP 503")
    digest = Notification("hook", (events[1], events[3]))
    await store.mark_retry_many(
        [(events[3].event_id, LATER)], "hook", reason="HTTP 502", now=T0, digest=digest
    )
    await store.defer("chat", T0 + timedelta(minutes=1), now=T0, reason="rate budget")
    mark = PollMark(high_water=LATER, baseline_floor=T0 - timedelta(hours=1))
    await store.commit_poll(
        "adhoc",
        upserts=(job("z", queue="adhoc"),),
        removals=(),
        events=[event("z", target="adhoc")],
        sinks=("hook",),
        now=LATER,
        mark=mark,
    )
    for at in (T0, T0 + timedelta(seconds=30)):
        await store.record_send("hook", at)
    await store.record_send("chat", LATER)
    first = await store.add_silence(job_name="nightly_.*", starts_at=T0, ends_at=FAR, comment="m")
    await store.add_silence(job_name=".*", queue="adhoc", starts_at=T0, ends_at=FAR)
    await store.expire_silence(first.id, LATER)


async def everything(store: Store) -> dict[str, object]:
    """Every contract read, over every target, sink and outbox row of `fill`."""
    rows = await store.due(FAR, limit=1000)
    ids = [event(name).event_id for name in "abcd"] + [event("z", target="adhoc").event_id]
    outcomes = {}
    for event_id in ids:
        for sink in ("hook", "chat"):
            try:
                outcomes[(event_id, sink)] = await store.outcome(event_id, sink)
            except KeyError:
                outcomes[(event_id, sink)] = None
    reads: dict[str, object] = {
        "targets": await store.targets(),
        "due": [(r.event, r.sink, r.attempts, r.created_at) for r in rows],
        "due_hook_now": [(r.event.event_id, r.sink) for r in await store.due(T0, sink="hook")],
        "next_due_at": await store.next_due_at(),
        "pending": await store.pending_by_sink(),
        "summary": await store.outbox_summary(),
        "outcomes": outcomes,
        "sends": [await store.recent_sends(s, T0 - timedelta(days=1)) for s in ("hook", "chat")],
        "silences": await store.list_silences(),
        "active": await store.active_silences(LATER),
    }
    for target in ("etl", "adhoc", "nope"):
        reads[f"{target}.state"] = await store.load_target(target)
        reads[f"{target}.recent"] = await store.load_target(target, ended_since=T0)
        reads[f"{target}.counts"] = await store.count_jobs(target)
        reads[f"{target}.lookup"] = await store.lookup_jobs(target, ["a", "b", "c", "z", "x"])
        reads[f"{target}.mark"] = await store.poll_mark(target)
        reads[f"{target}.memory"] = await store.load_rule_memory(target)
    for job_id in ("a", "b", "c", "d", "z", "old", "x"):
        reads[f"{job_id}.trails"] = await store.job_trails(job_id)
    reads["named"] = await store.jobs_named("name-a", limit=3)
    return reads


@pytest.fixture
async def source(tmp_path: Path) -> Path:
    """A state file holding rows of every table."""
    path = tmp_path / "state.db"
    store = await open_store(path)
    try:
        await fill(store)
    finally:
        await store.close()
    return path


async def test_every_table_is_copied_and_the_counts_are_checked(source: Path, pg_dsn: str) -> None:
    report = await migrate_sqlite_to_postgres(source, pg_dsn)
    assert report.ok
    assert [table for table, _, _ in report.counts] == list(STORE_TABLES)
    assert all(src == dst and src > 0 for _, src, dst in report.counts), report.counts
    assert report.lines()[-1] == "row counts match"
    assert "postgres@127.0.0.1" in report.lines()[0]


async def test_postgres_answers_every_contract_read_as_the_file_did(
    source: Path, pg_dsn: str
) -> None:
    await migrate_sqlite_to_postgres(source, pg_dsn)
    sqlite, postgres = await open_store(source), await open_store(pg_dsn)
    try:
        before, after = await everything(sqlite), await everything(postgres)
        assert after == before
        assert before["due"] and before["silences"] and before["etl.memory"]
        assert before["d.trails"] and before["named"] == [("etl", "a")]
    finally:
        await sqlite.close()
        await postgres.close()


async def test_after_the_copy_ids_order_and_known_events_carry_on(
    source: Path, pg_dsn: str
) -> None:
    await migrate_sqlite_to_postgres(source, pg_dsn)
    sqlite, postgres = await open_store(source), await open_store(pg_dsn)
    try:
        for store in (sqlite, postgres):
            assert await commit(store, [event("a"), event("old")]) == [event("old")]
            await commit(store, [event("e")], now=LATER)
            added = await store.add_silence(job_name="x", starts_at=T0, ends_at=FAR)
            assert added.id == 3
        assert await everything(postgres) == await everything(sqlite)
        due = [r.event.job.id for r in await postgres.due(FAR, limit=1000, sink="hook")]
        assert due[-2:] == ["old", "e"]  # after every migrated event
    finally:
        await sqlite.close()
        await postgres.close()


async def test_a_database_that_holds_state_is_refused_and_left_unchanged(
    source: Path, pg_dsn: str
) -> None:
    first = await migrate_sqlite_to_postgres(source, pg_dsn)
    with pytest.raises(TargetNotEmpty, match=r"already holds state \(targets: 2.*empty database"):
        await migrate_sqlite_to_postgres(source, pg_dsn)
    store = await PostgresStore.open(pg_dsn)
    try:
        assert await store.row_counts() == {t: n for t, n, _ in first.counts}
    finally:
        await store.close()


async def test_a_row_that_cannot_be_converted_rolls_the_whole_copy_back(
    source: Path, pg_dsn: str
) -> None:
    with closing(sqlite3.connect(source)) as db, db:
        db.execute("UPDATE sends SET at = 'not a time' WHERE sink = 'chat'")
    with pytest.raises(MigrationError, match="table sends: a row cannot be copied"):
        await migrate_sqlite_to_postgres(source, pg_dsn)
    store = await PostgresStore.open(pg_dsn)
    try:
        assert set((await store.row_counts()).values()) == {0}
    finally:
        await store.close()


async def test_a_missing_state_file_is_refused_before_anything_is_created(
    tmp_path: Path, pg_dsn: str
) -> None:
    with pytest.raises(MigrationError, match="no state file"):
        await migrate_sqlite_to_postgres(tmp_path / "nope.db", pg_dsn)
    assert not (tmp_path / "nope.db").exists()


async def test_a_file_of_an_older_release_is_upgraded_then_copied(
    tmp_path: Path, pg_dsn: str
) -> None:
    path = tmp_path / "v1.db"
    shutil.copyfile(v1.V1_PATH, path)
    report = await migrate_sqlite_to_postgres(path, pg_dsn)
    assert report.ok
    store = await open_store(pg_dsn)
    try:
        state = await store.load_target("etl")
        assert state is not None and set(state.jobs) == {j.id for j in v1.JOBS}
    finally:
        await store.close()


async def test_the_command_prints_the_counts_and_refuses_a_second_run(
    source: Path, pg_dsn: str, tmp_path: Path
) -> None:
    secret = tmp_path / "pg-password"
    secret.write_text("not-needed-with-trust-auth\n")
    code, out, err = await asyncio.to_thread(
        run_cli,
        *("state", "migrate", "--state", str(source), "--to", pg_dsn),
        *("--password-file", str(secret)),
    )
    assert code == 0, err
    assert "jobs" in out and out.rstrip().endswith("row counts match")
    assert "not-needed" not in out + err

    code, out, err = await asyncio.to_thread(
        run_cli, "state", "migrate", "--state", str(source), "--to", pg_dsn
    )
    assert code == 1
    assert "already holds state" in err and out == ""


def test_the_command_refuses_a_url_with_a_password() -> None:
    code, _, err = run_cli(
        "state", "migrate", "--state", "x.db", "--to", "postgresql://u:hunter22@h/db"
    )
    assert code == 2
    assert "--password-file" in err and "hunter22" not in err
