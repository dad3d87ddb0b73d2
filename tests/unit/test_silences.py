"""Silences: the model and its matching, and the CLI over the state file.

Storing them is the store contract's (`tests/store/test_store_memory.py`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from monitor.cli import main
from monitor.models import Event, EventKind, Job, JobState
from monitor.silences import Silence, SilenceError, silencing
from monitor.store import open_store
from tests.cli_support import offline_config

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
LATER = T0 + timedelta(hours=2)


def event(name: str = "nightly_etl", queue: str = "etl") -> Event:
    job = Job(id=f"id-{name}", state=JobState.DEAD, queue=queue, name=name)
    return Event(
        event_id=f"ev-{name}-{queue}",
        kind=EventKind.TRANSITION,
        target=queue,
        job=job,
        from_state=JobState.RUNNING,
        to_state=JobState.DEAD,
        observed_at=T0,
    )


def silence(job_name: str = "nightly_.*", queue: str | None = None, sid: int = 1) -> Silence:
    return Silence(id=sid, job_name=job_name, queue=queue, starts_at=T0, ends_at=LATER)


# --- the model ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job_name", "queue", "ev", "expected"),
    [
        ("nightly_.*", None, event("nightly_etl"), True),
        ("nightly_.*", None, event("weekly_etl"), False),
        ("nightly", None, event("nightly_etl"), False),  # anchored: the whole name
        (".*etl.*", None, event("nightly_etl_v2"), True),
        ("nightly_.*", "etl_*", event("nightly_etl", "etl_prod"), True),
        ("nightly_.*", "etl_*", event("nightly_etl", "adhoc"), False),
        (".*", "adhoc", event("anything", "adhoc"), True),
    ],
)
def test_a_silence_covers_jobs_by_whole_name_regex_and_queue_glob(
    job_name: str, queue: str | None, ev: Event, expected: bool
) -> None:
    assert silence(job_name, queue).matches(ev, T0) is expected


def test_a_silence_is_active_from_its_start_until_just_before_its_end() -> None:
    s = silence()
    assert not s.matches(event(), T0 - timedelta(seconds=1))
    assert s.matches(event(), T0)
    assert s.matches(event(), LATER - timedelta(microseconds=1))
    assert not s.matches(event(), LATER)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"job_name": "(unclosed"}, "not a valid regular expression"),
        ({"job_name": ""}, "must not be empty"),
        ({"ends_at": T0 - timedelta(seconds=1)}, "cannot end before it starts"),
        ({"queue": ""}, "queue glob must not be empty"),
        ({"starts_at": datetime(2026, 11, 29, 10, 0)}, "timezone-aware"),
    ],
)
def test_an_invalid_silence_is_refused_with_a_reason(
    kwargs: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {"id": 1, "job_name": ".*", "starts_at": T0, "ends_at": LATER}
    fields.update(kwargs)
    with pytest.raises(SilenceError, match=message):
        Silence(**fields)  # type: ignore[arg-type]


def test_the_lowest_id_of_several_matching_silences_is_the_one_reported() -> None:
    found = silencing([silence(".*", sid=7), silence("nightly_.*", sid=3)], event(), T0)
    assert found is not None and found.id == 3
    assert silencing([silence("weekly_.*")], event(), T0) is None


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    data = offline_config(state={"path": str(tmp_path / "state.db")})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args: str) -> int:
    return main(["--log-format", "json", *args])


async def stored_silences(path: Path) -> list[Silence]:
    store = await open_store(path)
    try:
        return await store.list_silences()
    finally:
        await store.close()


def test_silence_add_list_and_expire_work_on_the_state_file_of_the_config(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = str(config_file)
    before = datetime.now(UTC)
    args = ("--job-name", "nightly_.*", "--queue", "etl*", "--for", "2h", "--comment", "deploy")
    assert cli("silence", "add", "--config", conf, *args) == 0
    assert capsys.readouterr().out.startswith("silence 1 added, until ")

    (stored,) = asyncio.run(stored_silences(tmp_path / "state.db"))
    assert (stored.job_name, stored.queue, stored.comment) == ("nightly_.*", "etl*", "deploy")
    assert timedelta(hours=2) <= stored.ends_at - before < timedelta(hours=2, seconds=30)

    assert cli("silence", "list", "--config", conf) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split("\t")[:2] == ["1", "active"]
    assert lines[1].split("\t")[3:] == ["*", "etl*", "nightly_.*", "deploy"]

    assert cli("silence", "expire", "--config", conf, "1") == 0
    assert capsys.readouterr().out == "silence 1 expired\n"
    assert cli("silence", "list", "--config", conf) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1  # the header only
    assert cli("silence", "list", "--config", conf, "--all") == 0
    assert "\texpired\t" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--job-name", "(bad", "--for", "2h"), "not a valid regular expression"),
        (("--job-name", "x", "--for", "2 fortnights"), "not a duration"),
        (("--job-name", "x", "--for", "0s"), "more than zero"),
    ],
)
def test_silence_add_exits_2_on_a_bad_regex_or_duration_and_stores_nothing(
    config_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["silence", "add", "--config", str(config_file), *args])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "state.db").exists()


def test_expiring_an_unknown_silence_is_a_failure(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("silence", "expire", "--config", str(config_file), "42") == 1
    assert "no silence with id 42" in capsys.readouterr().err


def test_silence_commands_exit_2_on_an_invalid_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("queues: [etl]\n")
    assert cli("silence", "list", "--config", str(bad)) == 2
    assert "dli: field required" in capsys.readouterr().err
