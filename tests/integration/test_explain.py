"""`dli-monitor explain JOB` answers for every outcome a notification can have, end to end.

The real daemon (`Monitor`, built from a config as `dli-monitor run` builds it) polls the DLI
simulator on a real socket and delivers to a webhook receiver; a fake clock drives it. Then
`explain` reads the state file read-only (`open_reader`), as the command does beside a running
daemon, and must say per run: the states seen (with their cycle, the baseline flagged), each
event's routing, every attempt per sink with the vendor's answer and the next retry, and, where
nothing was sent, why in one line: silenced, unrouted, quiet hours, budget digest, failed, or
first seen in the silent baseline. The command itself (text, `--json`, exit 1 for an unknown
job) runs as a real process, and `/api/explain/{job}` is asked over HTTP with its auth.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from monitor.explain import Explanation, RunStory, explain, to_json
from monitor.explain_rules import utc_text
from monitor.models import JobState
from monitor.store import StoreWriteError, open_reader, open_store
from tests.cli_support import run_cli as run_subprocess_cli
from tests.conftest import Harness
from tests.fakes.receiver import Reply

NIGHT = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
MORNING = datetime(2026, 11, 29, 23, 0, tzinfo=UTC)  # 07:00 in Shanghai, the next day
TOKEN = "explain-token-0123456789"


@pytest.fixture(autouse=True)
def _no_jitter(harness: Harness) -> None:
    """Retry waits exactly as configured (10 s, then 60 s), so tests can name the next retry."""
    harness.overrides["delivery"] = {
        "backoff": ["10s", "60s"],
        "jitter": 0,
        "max_age": "1h",
        "timeout": "2s",
    }


async def explained(harness: Harness, job: str, *, runs: int = 3) -> Explanation:
    """What `explain` answers from the state file, opened read-only."""
    store = await open_reader(harness.state_path)
    try:
        found = await explain(store, job, now=harness.clock(), runs=runs)
    finally:
        await store.close()
    assert found is not None, f"explain found no job {job!r}"
    return found


async def one_run(harness: Harness, job: str) -> RunStory:
    (run,) = (await explained(harness, job)).runs
    return run


async def fail_once(harness: Harness, name: str = "nightly_etl", **config: Any) -> str:
    """Baseline a running job, then see it die in the next cycle; returns its id."""
    job = harness.world.add_job(queue="etl", name=name, state="running")
    await harness.cycle(**config)
    harness.world.set_state(job.id, "dead", log_line="java.lang.OutOfMemoryError")
    harness.clock.advance(30)
    await harness.cycle(**config)
    return job.id


def run_cli(*args: str) -> tuple[int, str, str]:
    """`dli-monitor explain ARGS` in a subprocess."""
    return run_subprocess_cli("explain", *args)


# -- one outcome each -----------------------------------------------------------------------------


async def test_a_delivered_failure_shows_its_states_event_route_and_the_attempt(
    harness: Harness,
) -> None:
    start = harness.clock()
    job_id = await fail_once(harness)
    run = await one_run(harness, job_id)

    assert (run.name, run.queue, run.state, run.reason) == ("nightly_etl", "etl", "dead", "")
    assert [(s.state, s.seen_at, s.baseline) for s in run.sightings] == [
        (JobState.RUNNING, start, True),
        (JobState.DEAD, harness.clock(), False),
    ]
    assert all(len(s.cycle_id) == 12 for s in run.sightings)
    assert run.sightings[0].cycle_id != run.sightings[1].cycle_id
    (event,) = run.events
    assert (event.kind, event.from_state, event.to_state) == ("transition", "running", "dead")
    assert event.cycle_id == run.sightings[1].cycle_id
    assert event.routing is not None and event.routing.default and event.reason == ""
    (hook,) = event.sinks
    assert hook.status == "delivered"
    assert hook.reason == f"delivered at {utc_text(harness.clock())} (attempt 1)"
    assert [(a.attempt, a.outcome, a.at) for a in hook.attempts] == [
        (1, "delivered", harness.clock())
    ]
    verdicts = {v.rule: (v.fired, v.why) for v in run.rules}
    assert verdicts["streak"] == (False, "1 failure of nightly_etl in a row")
    assert verdicts["stuck"] == (False, "not seen in starting or recovering")
    assert verdicts["recovered"] == (False, "the run has not succeeded")


async def test_a_retried_delivery_shows_the_vendors_answer_and_the_next_retry(
    harness: Harness,
) -> None:
    harness.receiver.script([Reply(503, body="upstream busy, try later")])
    job_id = await fail_once(harness)
    failed_at = harness.clock()
    retry_at = failed_at + timedelta(seconds=10)  # delivery.backoff starts at 10s

    (event,) = (await one_run(harness, job_id)).events
    (hook,) = event.sinks
    assert (hook.status, hook.next_attempt_at) == ("pending", retry_at)
    assert hook.reason == (
        f"retrying: attempt 1 failed (HTTP 503: upstream busy, try later);"
        f" next retry at {utc_text(retry_at)}"
    )
    (first,) = hook.attempts
    assert (first.outcome, first.answer, first.kind) == (
        "retry",
        "HTTP 503: upstream busy, try later",
        "http_5xx",
    )
    assert (first.at, first.next_attempt_at) == (failed_at, retry_at)

    harness.clock.advance(10)
    await harness.cycle()
    run = await one_run(harness, job_id)
    (hook,) = run.events[0].sinks
    assert hook.reason == f"delivered at {utc_text(retry_at)} (attempt 2)"
    assert [a.outcome for a in hook.attempts] == ["retry", "delivered"]
    assert run.reason == ""


async def test_a_burst_beyond_the_budget_is_explained_as_one_digest(harness: Harness) -> None:
    limited = {
        "sinks": [
            {
                "name": "hook",
                "type": "webhook",
                "url": harness.receiver.url,
                "rate_limit": {"per_minute": 2},
            }
        ]
    }
    jobs = [harness.world.add_job(queue="etl", name=f"etl_{n}", state="running") for n in range(5)]
    await harness.cycle(**limited)
    for job in jobs:
        harness.world.set_state(job.id, "dead")
    harness.clock.advance(30)
    await harness.cycle(**limited)

    (digest,) = harness.receiver.payloads()
    assert digest["kind"] == "digest" and digest["count"] == 5
    for job in jobs:
        (hook,) = (await one_run(harness, job.id)).events[0].sinks
        assert hook.status == "delivered"
        assert hook.reason == f"budget: in digest #1 (5 events) sent at {utc_text(harness.clock())}"
        (sent,) = hook.attempts
        assert (sent.digest_id, sent.digest_size, sent.outcome) == (1, 5, "delivered")


async def test_a_silenced_failure_names_the_silence_and_until_when(harness: Harness) -> None:
    job = harness.world.add_job(queue="etl", name="adhoc_report", state="running")
    await harness.cycle()
    until = harness.clock() + timedelta(hours=2)
    store = await open_store(harness.state_path)
    try:
        silence = await store.add_silence(
            job_name="adhoc_.*", starts_at=harness.clock(), ends_at=until, comment="known flaky"
        )
    finally:
        await store.close()
    harness.world.set_state(job.id, "dead")
    harness.clock.advance(30)
    await harness.cycle()

    assert harness.receiver.received == []
    run = await one_run(harness, job.id)
    what = "job_name=adhoc_.*, comment 'known flaky'"
    line = f"silenced by silence #{silence.id} ({what}) until {utc_text(until)}"
    assert run.reason == line
    (event,) = run.events
    assert (event.sinks, event.reason) == ((), line)
    assert event.routing is not None and event.routing.silence is not None
    assert (event.routing.silence.id, event.routing.silence.until) == (silence.id, until)


async def test_an_unrouted_failure_says_no_route_matched_and_what_it_was(
    harness: Harness,
) -> None:
    routes = {
        "routes": [{"match": {"queue": "nightly"}, "sinks": ["hook"]}],
        "default_sinks": [],
    }
    job_id = await fail_once(harness, "adhoc_report", **routes)

    assert harness.receiver.received == []
    run = await one_run(harness, job_id)
    assert run.reason == (
        "no route matched: kind=transition queue=etl project=default job_name=adhoc_report,"
        " and default_sinks is empty"
    )
    (event,) = run.events
    assert event.routing is not None and event.routing.matched == ()


async def test_a_failure_in_quiet_hours_is_held_until_the_morning(harness: Harness) -> None:
    harness.clock.now = NIGHT - timedelta(minutes=30)
    quiet = {
        "routes": [
            {
                "match": {"job_name": "nightly_.*"},
                "sinks": ["hook"],
                "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Asia/Shanghai"},
            }
        ]
    }
    job = harness.world.add_job(queue="etl", name="nightly_etl", state="running")
    await harness.cycle(**quiet)
    harness.world.set_state(job.id, "dead")
    harness.clock.now = NIGHT
    await harness.cycle(**quiet)

    run = await one_run(harness, job.id)
    held = f"held by quiet hours of route #0 until {utc_text(MORNING)}"
    assert run.reason == held
    (event,) = run.events
    assert event.routing is not None
    assert event.routing.matched == ("#0 job_name=nightly_.*",)
    (hook,) = event.sinks
    assert (hook.status, hook.reason, hook.next_attempt_at) == ("pending", held, MORNING)

    harness.clock.now = MORNING
    await harness.cycle(**quiet)
    (hook,) = (await one_run(harness, job.id)).events[0].sinks
    assert hook.reason == f"delivered at {utc_text(MORNING)} (attempt 1)"


async def test_a_permanent_4xx_is_explained_as_failed_with_the_vendors_text(
    harness: Harness,
) -> None:
    harness.receiver.script([Reply(400, body='{"error": "unknown field \'job\'"}')])
    job_id = await fail_once(harness)

    run = await one_run(harness, job_id)
    answer = """HTTP 400: {"error": "unknown field 'job'"}"""
    assert run.reason == f"failed: {answer}"
    (hook,) = run.events[0].sinks
    assert hook.status == "failed"
    (attempt,) = hook.attempts
    assert (attempt.outcome, attempt.answer, attempt.kind) == ("failed", answer, "http_4xx")


async def test_a_job_only_seen_in_the_baseline_says_so(harness: Harness) -> None:
    job = harness.world.add_job(queue="etl", name="nightly_etl", state="dead")
    await harness.cycle()
    harness.clock.advance(30)
    await harness.cycle()

    run = await one_run(harness, job.id)
    (seen,) = run.sightings
    assert seen.baseline and run.events == ()
    assert run.reason == (
        f"first seen in the silent baseline at {utc_text(seen.seen_at)} (cycle {seen.cycle_id})"
    )


async def test_a_name_finds_its_newest_runs_newest_first(harness: Harness) -> None:
    await harness.cycle()
    ids = []
    for _ in range(4):
        run = harness.world.add_job(queue="etl", name="hourly_sync", state="running")
        ids.append(run.id)
        await harness.cycle()
        harness.world.set_state(run.id, "success")
        harness.clock.advance(60)
        await harness.cycle()
    harness.world.add_job(queue="etl", name="other", state="running")
    await harness.cycle()

    found = await explained(harness, "hourly_sync")
    assert found.matched_by == "name"
    assert [run.job_id for run in found.runs] == ids[::-1][:3]
    assert all(run.name == "hourly_sync" and run.state == "success" for run in found.runs)
    assert [r.job_id for r in (await explained(harness, "hourly_sync", runs=1)).runs] == ids[-1:]


# -- the command, its JSON, and reading beside the daemon -----------------------------------------


def write_config(harness: Harness, path: Path) -> Path:
    path.write_text(yaml.safe_dump(harness.config()))
    return path


async def test_the_command_prints_text_and_json_and_exits_1_for_an_unknown_job(
    harness: Harness, tmp_path: Path
) -> None:
    harness.receiver.script([Reply(503, body="busy")])
    job_id = await fail_once(harness)
    config = write_config(harness, tmp_path / "config.yaml")

    code, out, err = await asyncio.to_thread(run_cli, job_id, "--config", str(config))
    assert code == 0, err
    assert f"job {job_id} 'nightly_etl' on target etl (queue etl): dead" in out
    assert "(baseline, silent)" in out
    assert "transition running -> dead" in out
    assert "routing: no route matched: default sinks -> hook" in out
    assert "hook: retrying: attempt 1 failed (HTTP 503: busy); next retry at" in out
    assert "#1  2026-11-29 10:00:30Z  retry  HTTP 503: busy  next 2026-11-29 10:00:40Z" in out

    code, out, err = await asyncio.to_thread(
        run_cli, job_id, "--state", str(harness.state_path), "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"query", "matched_by", "at", "runs"}
    (run,) = data["runs"]
    assert set(run) == {
        *("target", "job_id", "name", "queue", "state", "sightings", "events", "rules"),
        "reason",
    }
    assert [s["state"] for s in run["sightings"]] == ["running", "dead"]
    (event,) = run["events"]
    (hook,) = event["sinks"]
    assert hook["status"] == "pending" and hook["next_attempt_at"] == "2026-11-29T10:00:40Z"
    assert hook["attempts"][0]["answer"] == "HTTP 503: busy"
    assert event["routing"]["plan"][0]["sink"] == "hook"
    assert {r["rule"] for r in run["rules"]} == {"stuck", "overdue", "streak", "recovered"}

    code, out, err = await asyncio.to_thread(
        run_cli, "no-such-job", "--state", str(harness.state_path)
    )
    assert (code, out) == (1, "")
    assert "no job with id or name 'no-such-job'" in err


async def test_explain_reads_the_state_while_the_daemon_holds_it_open(
    harness: Harness,
) -> None:
    job = harness.world.add_job(queue="etl", name="nightly_etl", state="running")
    async with harness.monitor() as monitor:
        await monitor.run_cycle()
        harness.world.set_state(job.id, "dead")
        harness.clock.advance(30)
        await monitor.run_cycle()
        wal = await asyncio.to_thread(Path(f"{harness.state_path}-wal").stat)
        assert wal.st_size > 0  # the rows are still in the WAL, not yet in the main file

        code, out, err = await asyncio.to_thread(
            run_cli, job.id, "--state", str(harness.state_path), "--json"
        )
        assert code == 0, err
        (run,) = json.loads(out)["runs"]
        assert [s["state"] for s in run["sightings"]] == ["running", "dead"]

        reader = await open_reader(harness.state_path)
        try:
            with pytest.raises(StoreWriteError):
                await reader.add_silence(job_name=".*", starts_at=harness.clock(), ends_at=MORNING)
        finally:
            await reader.close()
        harness.world.set_state(job.id, "running")
        harness.clock.advance(30)
        await monitor.run_cycle()  # the daemon still writes after the reader is gone
    assert [s.state for s in (await one_run(harness, job.id)).sightings][-1] is JobState.RUNNING


async def test_the_http_view_serves_the_same_json_behind_the_servers_auth(
    harness: Harness,
) -> None:
    job_id = await fail_once(harness)
    server = {"listen": "127.0.0.1:0", "auth": {"bearer_token": TOKEN}}
    async with harness.monitor(server=server) as monitor:
        await monitor.start_server()
        base = f"http://127.0.0.1:{monitor.server_port}/api/explain"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/{job_id}") as anonymous:
                assert anonymous.status == 401
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with session.get(f"{base}/{job_id}", headers=auth) as answer:
                assert answer.status == 200
                body = await answer.json()
            async with session.get(f"{base}/nightly_etl?runs=1", headers=auth) as by_name:
                assert by_name.status == 200
                assert (await by_name.json())["matched_by"] == "name"
            async with session.get(f"{base}/nope", headers=auth) as unknown:
                assert unknown.status == 404
                assert await unknown.json() == {"error": "unknown job", "job": "nope"}
            async with session.get(f"{base}/{job_id}?runs=0", headers=auth) as bad:
                assert bad.status == 400
    assert body == to_json(await explained(harness, job_id))
