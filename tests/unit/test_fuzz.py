"""Bad input, generated: whatever JSON the API sends or YAML a person writes, nothing crashes.

- The response parser: any JSON as a listing body either parses or is a `DliError`; any row
  either becomes a `Job` or is counted as malformed; a listing that fails yields nothing.
- The differ: applying its events to the old snapshot gives the new one, and a listing that
  covers only some jobs never says anything about the others.
- The config: any tree of values is a `Settings` or a `ConfigError` listing key paths.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import parse_settings
from monitor.config.errors import ConfigError
from monitor.diff import diff
from monitor.dli.auth import NoAuth
from monitor.dli.client import DliClient
from monitor.dli.errors import DliError
from monitor.dli.parse import MalformedJob, parse_job
from monitor.models import EventKind, Job, JobState
from monitor.poll.listing import ListingIncomplete, fetch_listing

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
ROW_KEYS = st.sampled_from(["id", "state", "queue", "name", "create_time", "update_time", "log"])
ROWS = st.dictionaries(ROW_KEYS, JSON, max_size=7) | JSON


@given(ROWS)
def test_any_row_is_a_job_or_malformed(row: Any) -> None:
    if not isinstance(row, dict):
        return  # the client drops non-objects before parsing (and counts them)
    try:
        job = parse_job(row, default_queue="etl")
    except MalformedJob:
        return
    assert isinstance(job.state, JobState) and job.id


class ScriptedClient(DliClient):
    """The real client's body handling over generated bodies instead of HTTP."""

    def __init__(self, bodies: list[Any]) -> None:
        super().__init__(None, endpoint="http://x", project_id="p", auth=NoAuth())  # type: ignore[arg-type]
        self._bodies = bodies

    async def _request(self, operation: str, path: str, params: Any = ()) -> dict[str, Any]:
        body = self._bodies.pop(0) if self._bodies else {"sessions": [], "total": 0}
        if not isinstance(body, dict):
            from monitor.dli.errors import DliBadResponse

            raise DliBadResponse(operation, error_msg="not an object")
        return body


BODIES = st.lists(
    st.fixed_dictionaries({"sessions": st.lists(ROWS, max_size=5), "total": JSON}) | JSON,
    min_size=1,
    max_size=3,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(BODIES)
def test_any_listing_body_parses_or_fails_cleanly_and_a_failure_says_nothing(
    bodies: list[Any],
) -> None:
    async def run() -> None:
        client = ScriptedClient(list(bodies))
        try:
            listing = await fetch_listing(client, queue_name="etl", page_size=5)
        except (DliError, ListingIncomplete):
            return  # the cycle keeps the old snapshot: no event
        assert all(isinstance(job, Job) for job in listing.jobs.values())

    asyncio.run(run())


STATES = st.sampled_from([s for s in JobState if s is not JobState.UNKNOWN])
SNAPSHOT = st.dictionaries(st.sampled_from("abcdefg"), STATES, max_size=7)


def jobs(states: dict[str, JobState]) -> dict[str, Job]:
    return {
        k: Job(id=k, state=v, queue="etl", create_time=T0, state_since=T0)
        for k, v in states.items()
    }


@given(SNAPSHOT, SNAPSHOT)
def test_applying_the_events_to_the_old_snapshot_gives_the_new_one(
    before: dict[str, JobState], after: dict[str, JobState]
) -> None:
    previous, current = jobs(before), jobs(after)
    confirmed = {
        k: None for k, job in previous.items() if k not in current and not job.state.is_terminal
    }
    result = diff(
        previous, current, target="etl", now=T0 + timedelta(minutes=1), confirmed=confirmed
    )
    replayed = {k: j.state for k, j in previous.items()}
    for event in result.events:
        if event.kind is EventKind.VANISHED:
            replayed.pop(event.job.id)
        else:
            assert event.to_state is not None
            replayed[event.job.id] = event.to_state
    for job_id in result.removals:
        replayed.pop(job_id, None)
    assert replayed == {k: j.state for k, j in result.snapshot.items()}


@given(SNAPSHOT, SNAPSHOT)
def test_an_incomplete_listing_says_nothing_about_jobs_it_did_not_show(
    before: dict[str, JobState], shown: dict[str, JobState]
) -> None:
    previous = jobs(before)
    result = diff(
        previous, jobs(shown), target="etl", now=T0 + timedelta(minutes=1), complete=False
    )
    assert all(event.job.id in shown for event in result.events)
    assert result.removals == ()
    assert set(previous) <= set(result.snapshot)


CONFIG_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "dli",
                    "queues",
                    "poll",
                    "sinks",
                    "server",
                    "endpoint",
                    "auth",
                    "type",
                    "url",
                    "name",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)


@given(CONFIG_VALUES)
def test_any_config_tree_is_settings_or_a_config_error(data: Any) -> None:
    try:
        parse_settings(data, environ={})
    except ConfigError as exc:
        assert exc.problems
        assert all(isinstance(p, str) and p for p in exc.problems)


@pytest.mark.parametrize(
    "text",
    ["dli: [", "{a: 1", "- - -", "dli: !!python/object:os.system x", "\x00", "queues: *alias"],
)
def test_broken_yaml_is_a_config_error(tmp_path: Any, text: str) -> None:
    from monitor.config import load_settings

    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_settings(path, environ={})
