"""Opening the PostgreSQL store: `open_store` picks it from a `postgresql://` URL, the `state:`
settings name it (`url`, with the password in `password_file`), and what is refused and how.

A real throw-away server (`pg_dsn`: a fresh database per test); the contract itself is tested
for both backends by the other `test_store_*.py` files.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from monitor.config import ConfigError, parse_settings
from monitor.store import StoreError, StoreWriteError, open_store
from monitor.store.postgres import SCHEMA_VERSION, PostgresStore
from tests.cli_support import offline_config, run_cli
from tests.conftest import PROJECT
from tests.pg_server import free_port
from tests.store.support import T0, commit, event


def config(state: dict[str, Any]) -> dict[str, Any]:
    return offline_config(PROJECT, state=state)


def problems(state: dict[str, Any], base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(state), {}, base_dir=base_dir)
    return caught.value.problems


async def test_both_url_schemes_open_the_same_postgresql_database(pg_dsn: str) -> None:
    short = pg_dsn.replace("postgresql://", "postgres://", 1)
    for url, new in ((pg_dsn, [event("a")]), (short, [])):
        store = await open_store(url, password="ignored-by-trust-auth")
        try:
            assert isinstance(store, PostgresStore) and not store.fenced
            assert await commit(store, [event("a")]) == new
        finally:
            await store.close()
        await store.close()  # closing twice is harmless


async def test_a_password_or_a_fence_with_a_sqlite_path_is_a_mistake(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"postgresql:// URL"):
        await open_store(tmp_path / "state.db", password="x")
    with pytest.raises(ValueError, match=r"postgresql:// URL"):
        await open_store(str(tmp_path / "state.db"), fence=lambda: None)
    assert not (tmp_path / "state.db").exists()


async def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    url = f"postgresql://monitor@127.0.0.1:{free_port()}/state"
    refused = r"cannot connect to PostgreSQL postgresql://monitor@"
    with pytest.raises(StoreError, match=refused) as e:
        await open_store(url, password="CANARY-PG-PASSWORD")
    assert "CANARY" not in str(e.value)


async def test_replicas_opening_a_new_database_together_create_the_schema_once(
    pg_dsn: str,
) -> None:
    stores = await asyncio.gather(*(open_store(pg_dsn) for _ in range(4)))
    try:
        assert [await commit(s, [event("a")]) for s in stores].count([event("a")]) == 1
    finally:
        for store in stores:
            await store.close()


async def test_a_database_from_a_newer_release_is_refused_and_left_unchanged(
    pg_dsn: str,
) -> None:
    store = await open_store(pg_dsn)
    await store.close()
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("UPDATE store_schema SET version = $1", SCHEMA_VERSION + 1)
        with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}.*newer"):
            await open_store(pg_dsn)
        assert await conn.fetchval("SELECT version FROM store_schema") == SCHEMA_VERSION + 1
    finally:
        await conn.close()


async def test_a_version_1_database_gets_the_trail_tables_and_keeps_its_rows(
    pg_dsn: str,
) -> None:
    store = await open_store(pg_dsn)
    try:
        await commit(store, [event("a")])
    finally:
        await store.close()
    conn = await asyncpg.connect(pg_dsn)
    try:  # what the version-1 release left: no trail tables, no job index on events
        await conn.execute(
            "DROP TABLE job_sightings, decisions, attempts, digests;"
            " DROP INDEX events_by_job; UPDATE store_schema SET version = 1"
        )
        store = await open_store(pg_dsn)
        try:
            (trail,) = await store.job_trails("a")
            await store.mark_delivered(event("a").event_id, "hook", T0)
            (again,) = await store.job_trails("a")
        finally:
            await store.close()
        assert SCHEMA_VERSION == 2
        assert await conn.fetchval("SELECT version FROM store_schema") == SCHEMA_VERSION
    finally:
        await conn.close()
    (record,) = trail.events
    assert (record.event, record.routing, record.attempts) == (event("a"), None, ())
    assert [(a.attempt, a.outcome) for a in again.events[0].attempts] == [(1, "delivered")]


async def test_state_settings_name_the_database_and_read_the_password_from_a_file(
    pg_dsn: str, tmp_path: Path
) -> None:
    (tmp_path / "pg-password").write_text("CANARY-PG-PASSWORD\n")
    settings = parse_settings(
        config({"url": pg_dsn, "password_file": "pg-password"}), {}, base_dir=tmp_path
    )
    assert settings.state.location == pg_dsn
    assert settings.state.password_value() == "CANARY-PG-PASSWORD"
    store = await open_store(settings.state.location, password=settings.state.password_value())
    try:
        await commit(store, [], now=T0)
        assert await store.targets() == ["etl"]
    finally:
        await store.close()


def test_without_a_url_the_state_stays_in_the_sqlite_file() -> None:
    settings = parse_settings(config({}), {})
    assert settings.state.url is None
    assert settings.state.location == Path("./dli-monitor.db")
    assert settings.state.password_value() is None


def test_a_url_holding_a_password_is_refused_pointing_at_password_file() -> None:
    for url in ("postgresql://u:CANARY-PG@db:5432/state", "postgresql://u@db/s?password=CANARY-PG"):
        (problem,) = problems({"url": url})
        assert problem.startswith("state.url: must not hold a password")
        assert "state.password_file" in problem and "CANARY" not in problem


def test_a_url_of_another_scheme_and_a_password_without_a_url_are_refused(
    tmp_path: Path,
) -> None:
    assert problems({"url": "mysql://u@db/state"}) == [
        "state.url: must be a postgresql:// (or postgres://) URL"
    ]
    (tmp_path / "pw").write_text("secret-password\n")
    assert problems({"password_file": "pw"}, base_dir=tmp_path) == [
        "state.password_file: a PostgreSQL password needs state.url (the SQLite file has none)"
    ]


async def test_the_silence_commands_use_the_configured_database(
    pg_dsn: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config({"url": pg_dsn})))
    code, out, err = await asyncio.to_thread(
        run_cli, "silence", "add", "--config", str(path), "--job-name", "nightly", "--for", "1h"
    )
    assert code == 0, err
    assert out.startswith("silence 1 added")
    store = await open_store(pg_dsn)
    try:
        assert [s.job_name for s in await store.list_silences()] == ["nightly"]
    finally:
        await store.close()
    code, out, err = await asyncio.to_thread(run_cli, "state", "check", "--config", str(path))
    assert code == 0, err
    assert "silences: 1\n" in out


async def test_a_dropped_connection_is_replaced_by_the_pool(pg_dsn: str) -> None:
    store = await open_store(pg_dsn)
    admin = await asyncpg.connect(pg_dsn)
    try:
        await commit(store, [], now=T0)
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'dli-monitor'"
        )
        await asyncio.sleep(0.2)  # the driver sees the connection close
        assert await commit(store, [event("a")]) == [event("a")]
    finally:
        await admin.close()
        await store.close()


async def test_a_write_that_times_out_is_a_store_write_error_and_writes_nothing(
    pg_dsn: str,
) -> None:
    store = await PostgresStore.open(pg_dsn, command_timeout=0.3)
    admin = await asyncpg.connect(pg_dsn)
    try:
        async with admin.transaction():
            await admin.execute("LOCK TABLE targets IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(
                StoreWriteError, match=r"PostgreSQL postgresql://postgres@.*Timeout"
            ):
                await commit(store, [event("a")])
        assert await store.targets() == []
        assert await commit(store, [event("a")]) == [event("a")]
    finally:
        await admin.close()
        await store.close()
