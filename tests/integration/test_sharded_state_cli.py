"""The operator commands on sharded PostgreSQL state: `silence`, `state` and `explain` reach the
shards' schemas (`shard_<i>_of_<n>`), not the empty default one.

With `--total-shards N` alone they act on every shard: a silence is added on each schema, and a
cycle of the shard that owns the job's queue mutes the job with it; `explain` searches every
schema and names the shard of what it finds; `state check` reports each schema read-only. With
`--shard I` they act on shard I only; `state migrate` copies a file into one shard's schema (the
ordinal in `POD_NAME`, as `run` resolves it). Bad flags exit 2 before anything is opened, and
with SQLite state the flags change nothing. The commands run as real processes against a fresh
database of the throw-away PostgreSQL server (`pg_dsn`); the daemon's shards are `Monitor`s
built as `dli-monitor run --total-shards 3` builds them, over the simulator.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.app import Monitor
from monitor.config import Settings
from monitor.models_silence import Silence
from monitor.pipeline import owned_targets
from monitor.shard import Shard
from monitor.store import open_store
from monitor.store.postgres import SCHEMA_VERSION, PostgresStore
from tests.cli_support import offline_config, run_cli
from tests.conftest import PROJECT, Harness

SCHEMAS = [f"shard_{index}_of_3" for index in range(3)]
QUEUES = {"q0": 0, "etl": 1, "adhoc": 2}
"""A queue owned by each of 3 shards (checked in `shard_monitors`)."""


async def cli(*args: str) -> tuple[int, str, str]:
    """`dli-monitor ARGS` in a subprocess, off the event loop the monitors share."""
    return await asyncio.to_thread(run_cli, *args)


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def plain_config(tmp_path: Path, state: dict[str, str]) -> Path:
    """A config with state `state` and nothing the commands here would reach."""
    sinks = [{"name": "out", "type": "console"}]
    return write_config(tmp_path, offline_config(PROJECT, sinks=sinks, state=state))


async def make_schemas(pg_dsn: str, *indexes: int) -> None:
    """Give shards `indexes` of 3 their (empty) state, as their first start does."""
    for index in indexes:
        store = await PostgresStore.open(pg_dsn, schema=SCHEMAS[index])
        await store.close()


async def silence_in(location: str | Path, schema: str | None, job_name: str) -> None:
    """Add a silence, open-ended in practice, straight into the store at `location`."""
    store = await open_store(location, schema=schema)
    try:
        end = datetime(2100, 1, 1, tzinfo=UTC)
        await store.add_silence(job_name=job_name, starts_at=datetime.now(UTC), ends_at=end)
    finally:
        await store.close()


async def active(pg_dsn: str, schema: str | None) -> list[Silence]:
    """The silences in force now in `schema`, as a shard's router reads them."""
    store = await PostgresStore.open(pg_dsn, schema=schema)
    try:
        return await store.active_silences(datetime.now(UTC))
    finally:
        await store.close()


async def schemas_present(pg_dsn: str) -> list[str]:
    store = await PostgresStore.open(pg_dsn)
    try:
        rows = await store.pool.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'shard%' ORDER BY nspname"
        )
    finally:
        await store.close()
    return [str(row["nspname"]) for row in rows]


def sharded(pg_dsn: str) -> dict[str, Any]:
    """Config overrides: the state in PostgreSQL, and the queues of `QUEUES`."""
    return {"state": {"url": pg_dsn, "lease_ttl": "1s"}, "queues": list(QUEUES)}


@asynccontextmanager
async def shard_monitors(harness: Harness, settings: Settings) -> AsyncIterator[list[Monitor]]:
    """The three shards of the deployment, each leading its own schema."""
    project = settings.projects[0]
    assert {q: i for i in range(3) for q in owned_targets(project, Shard(i, 3))} == QUEUES
    async with AsyncExitStack() as stack:
        monitors = [
            await stack.enter_async_context(
                Monitor(settings, clock=harness.clock, shard=Shard(index, 3))
            )
            for index in range(3)
        ]
        for monitor in monitors:
            assert await monitor.leadership.wait_leading(5)
        yield monitors


# -- silences -------------------------------------------------------------------------------------


async def test_a_silence_added_with_total_shards_reaches_every_shard_and_mutes_a_job_there(
    live_harness: Harness, pg_dsn: str, tmp_path: Path
) -> None:
    settings = live_harness.settings(**sharded(pg_dsn))
    config = write_config(tmp_path, live_harness.config(**sharded(pg_dsn)))
    job = live_harness.world.add_job(queue="adhoc", name="nightly_report", state="running")
    async with shard_monitors(live_harness, settings) as monitors:
        for monitor in monitors:
            assert (await monitor.run_cycle()).ok  # the baseline, in each shard's schema

        code, out, err = await cli(
            "silence", "add", "--config", str(config), "--total-shards", "3",
            "--job-name", "nightly_.*", "--for", "1h", "--comment", "db upgrade",
        )  # fmt: skip
        assert code == 0, err
        assert re.fullmatch(r"(shard [012]/3: silence 1 added, until \S+Z\n){3}", out), out
        assert [line[:9] for line in out.splitlines()] == ["shard 0/3", "shard 1/3", "shard 2/3"]
        for schema in SCHEMAS:
            (silence,) = await active(pg_dsn, schema)
            assert (silence.job_name, silence.comment) == ("nightly_.*", "db upgrade")
        assert await active(pg_dsn, None) == []  # not in the default schema

        live_harness.world.set_state(job.id, "dead", log_line="java.lang.OutOfMemoryError")
        assert (await monitors[2].run_cycle()).ok  # shard 2 owns queue adhoc
    assert live_harness.receiver.payloads() == []

    code, out, err = await cli(
        "explain", "nightly_report", "--config", str(config), "--total-shards", "3"
    )
    assert code == 0, err
    assert "running -> dead" in out
    assert out.startswith("shard 2/3 (schema shard_2_of_3):\n")
    assert "silenced by silence #1 (job_name=nightly_.*, comment 'db upgrade')" in out


async def test_a_silence_added_with_one_shard_reaches_that_shard_only(
    pg_dsn: str, tmp_path: Path
) -> None:
    await make_schemas(pg_dsn, 0, 1, 2)
    config = plain_config(tmp_path, {"url": pg_dsn})
    code, out, err = await cli(
        "silence", "add", "--config", str(config), "--shard", "1", "--total-shards", "3",
        "--job-name", "etl_.*", "--for", "2h",
    )  # fmt: skip
    assert code == 0, err
    assert re.fullmatch(r"shard 1/3: silence 1 added, until \S+Z\n", out), out
    assert [len(await active(pg_dsn, schema)) for schema in SCHEMAS] == [0, 1, 0]

    code, out, err = await cli("silence", "list", "--config", str(config), "--total-shards", "3")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split("\t")[:3] == ["SHARD", "ID", "STATUS"]
    assert row.split("\t")[:3] == ["1", "1", "active"] and row.split("\t")[6] == "etl_.*"


async def test_expire_with_total_shards_ends_a_silence_and_its_copies_even_under_other_ids(
    pg_dsn: str, tmp_path: Path
) -> None:
    await make_schemas(pg_dsn, 0, 1, 2)
    config = str(plain_config(tmp_path, {"url": pg_dsn}))
    add = ("silence", "add", "--config", config, "--for", "1h")
    assert (await cli(*add, "--shard", "1", "--total-shards", "3", "--job-name", "etl_.*"))[0] == 0
    code, out, err = await cli(*add, "--total-shards", "3", "--job-name", "nightly_.*")
    assert code == 0, err
    assert [line.split(" added")[0] for line in out.splitlines()] == [
        "shard 0/3: silence 1",
        "shard 1/3: silence 2",  # shard 1's ids have drifted: 1 is its own etl_.* silence
        "shard 2/3: silence 1",
    ]

    code, out, err = await cli("silence", "expire", "1", "--config", config, "--total-shards", "3")
    assert code == 2
    assert "names different silences on different shards" in err and "--shard" in err and not out

    code, out, err = await cli("silence", "expire", "2", "--config", config, "--total-shards", "3")
    assert code == 0, err
    assert out.splitlines() == [
        "shard 0/3: silence 1 expired",
        "shard 1/3: silence 2 expired",
        "shard 2/3: silence 1 expired",
    ]
    assert [[s.job_name for s in await active(pg_dsn, schema)] for schema in SCHEMAS] == [
        [],
        ["etl_.*"],
        [],
    ]


async def test_a_silence_for_shards_none_of_which_has_state_is_refused(
    pg_dsn: str, tmp_path: Path
) -> None:
    await make_schemas(pg_dsn, 0, 1)
    config = str(plain_config(tmp_path, {"url": pg_dsn}))
    add = ("silence", "add", "--config", config, "--job-name", ".*", "--for", "1h")
    code, out, err = await cli(*add, "--total-shards", "4")  # a typo: the deployment has 3
    assert code == 1 and not out
    assert "holds no state of shard(s) 0/4, 1/4, 2/4, 3/4" in err and "--total-shards" in err
    assert await schemas_present(pg_dsn) == SCHEMAS[:2]  # nothing was created

    code, out, err = await cli(*add, "--total-shards", "3")  # shard 2 has not started yet
    assert code == 0, err
    assert len(out.splitlines()) == 3
    assert "note: shard 2/3 has no state yet (no schema shard_2_of_3)" in err
    assert len(await active(pg_dsn, SCHEMAS[2])) == 1  # it finds the silence when it starts


# -- explain --------------------------------------------------------------------------------------


async def test_explain_with_total_shards_finds_a_job_in_shard_2s_schema_and_names_the_shard(
    live_harness: Harness, pg_dsn: str, tmp_path: Path
) -> None:
    settings = live_harness.settings(**sharded(pg_dsn))
    config = str(write_config(tmp_path, live_harness.config(**sharded(pg_dsn))))
    job = live_harness.world.add_job(queue="adhoc", name="nightly_report", state="running")
    async with shard_monitors(live_harness, settings) as monitors:
        for monitor in monitors:
            assert (await monitor.run_cycle()).ok
        live_harness.world.set_state(job.id, "dead")
        assert (await monitors[2].run_cycle()).ok

    code, out, err = await cli("explain", job.id, "--config", config, "--total-shards", "3")
    assert code == 0, err
    assert out.startswith(f"shard 2/3 (schema shard_2_of_3):\nexplain {job.id} (matched by id")
    assert "shard 0/3" not in out and "shard 1/3" not in out
    assert "on target adhoc (queue adhoc): dead" in out

    code, out, err = await cli(
        "explain", "nightly_report", "--config", config, "--total-shards", "3", "--json"
    )
    assert code == 0, err
    (found,) = json.loads(out)
    assert (found["shard"], found["schema"], found["matched_by"]) == ("2/3", SCHEMAS[2], "name")
    assert [run["job_id"] for run in found["runs"]] == [job.id]

    only_shard_0 = ("--config", config, "--shard", "0", "--total-shards", "3")
    code, _, err = await cli("explain", job.id, *only_shard_0)
    assert code == 1
    assert f"no job with id or name {job.id!r}" in err and "(shards 0/3)" in err


# -- state check and migrate -----------------------------------------------------------------------


async def test_state_check_over_three_shards_reports_each_read_only(
    pg_dsn: str, tmp_path: Path
) -> None:
    await make_schemas(pg_dsn, 0, 1)
    await silence_in(pg_dsn, SCHEMAS[1], ".*")
    config = str(plain_config(tmp_path, {"url": pg_dsn}))

    code, out, err = await cli("state", "check", "--config", config, "--total-shards", "3")
    assert code == 1, err
    blocks = re.split(r"^(?=shard \d/3:$)", out, flags=re.MULTILINE)[1:]
    assert [block.splitlines()[0] for block in blocks] == ["shard 0/3:", "shard 1/3:", "shard 2/3:"]
    for index, block in enumerate(blocks[:2]):
        assert "  database: postgresql://" in block and f"(schema {SCHEMAS[index]})\n" in block
        assert f"  schema version: {SCHEMA_VERSION} (same as this release: ok)\n" in block
        assert "  state ok\n" in block
    assert "    silences: 1\n" in blocks[1] and "    silences: 0\n" in blocks[0]
    assert "  no such schema (the shard creates it when it starts)\n" in blocks[2]
    assert out.endswith("3 shards checked: NOT ok: shard(s) 2/3\n")
    assert await schemas_present(pg_dsn) == SCHEMAS[:2]  # read-only: nothing created

    await make_schemas(pg_dsn, 2)
    code, out, err = await cli("state", "check", "--config", config, "--total-shards", "3")
    assert code == 0, err
    assert out.endswith("3 shards checked: all ok\n")
    code, out, err = await cli(
        "state", "check", "--config", config, "--shard", "1", "--total-shards", "3"
    )
    assert code == 0, err
    assert out.startswith("shard 1/3:\n") and "shard 0/3" not in out and "checked" not in out


async def test_state_migrate_in_a_shard_pod_copies_the_file_into_that_shards_schema(
    pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "state.db"
    await silence_in(source, None, "etl_.*")
    migrate = ("state", "migrate", "--state", str(source), "--to", pg_dsn, "--total-shards", "3")
    monkeypatch.delenv("POD_NAME", raising=False)
    code, out, err = await cli(*migrate)
    assert code == 2 and "POD_NAME" in err and not out

    monkeypatch.setenv("POD_NAME", "dli-batch-monitor-2")
    code, out, err = await cli(*migrate)
    assert code == 0, err
    assert "(schema shard_2_of_3) in one transaction" in out.splitlines()[0]
    assert out.rstrip().endswith("row counts match")
    assert [s.job_name for s in await active(pg_dsn, SCHEMAS[2])] == ["etl_.*"]
    assert await schemas_present(pg_dsn) == [SCHEMAS[2]]


# -- usage ----------------------------------------------------------------------------------------

OPERATOR_COMMANDS = [
    ["silence", "add", "--job-name", ".*", "--for", "1h"],
    ["silence", "list"],
    ["silence", "expire", "1"],
    ["state", "check"],
    ["explain", "some-job"],
]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--shard", "1"], "--shard 1 needs --total-shards"),
        (["--shard", "3", "--total-shards", "3"], "--shard 3 is out of range"),
        (["--total-shards", "0"], "--total-shards must be at least 1"),
    ],
)
def test_bad_shard_flags_exit_2_before_any_state_is_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    from monitor.cli import main

    state = tmp_path / "state.db"
    config = str(plain_config(tmp_path, {"path": str(state)}))
    for command in OPERATOR_COMMANDS:
        assert main(["--log-format", "json", *command, "--config", config, *flags]) == 2, command
        assert message in capsys.readouterr().err
    migrate = ["state", "migrate", "--state", str(state), "--to", "postgresql://u@127.0.0.1:1/d"]
    assert main(["--log-format", "json", *migrate, *flags]) == 2
    assert message in capsys.readouterr().err
    assert not state.exists()


def test_state_migrate_with_a_pod_ordinal_beyond_the_shard_count_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.cli import main

    monkeypatch.setenv("POD_NAME", "dli-batch-monitor-5")
    migrate = ["state", "migrate", "--state", str(tmp_path / "s.db"), "--to", "postgresql://u@h/d"]
    assert main([*migrate, "--total-shards", "3"]) == 2
    assert "has ordinal 5 but --total-shards is 3" in capsys.readouterr().err


async def test_with_sqlite_state_the_shard_flags_change_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    config = str(plain_config(tmp_path, {"path": str(state)}))
    shards = ("--total-shards", "3")
    add = ("silence", "add", "--config", config, "--job-name", ".*", "--for", "1h")
    for flags, expected in (((), 1), (shards, 2), ((*shards, "--shard", "2"), 3)):
        code, out, err = await cli(*add, *flags)
        assert code == 0, err
        assert re.fullmatch(rf"silence {expected} added, until \S+Z\n", out), out
    for command in (
        ("silence", "list", "--config", config),
        ("state", "check", "--config", config),
        ("explain", "no-such-job", "--config", config),
        ("explain", "no-such-job", "--state", str(state)),
    ):
        assert await cli(*command, *shards) == await cli(*command), command
    code, out, _ = await cli("silence", "list", "--config", config, *shards)
    assert code == 0 and out.startswith("ID\t") and len(out.splitlines()) == 4


async def test_state_check_of_an_unsharded_database_reads_its_default_schema(
    pg_dsn: str, tmp_path: Path
) -> None:
    await silence_in(pg_dsn, None, ".*")
    config = str(plain_config(tmp_path, {"url": pg_dsn}))

    code, out, err = await cli("state", "check", "--config", config)

    assert code == 0, err
    assert f"schema version: {SCHEMA_VERSION} (same as this release: ok)\n" in out
    assert "silences: 1\n" in out
    assert await schemas_present(pg_dsn) == []  # no shard schema made or read
