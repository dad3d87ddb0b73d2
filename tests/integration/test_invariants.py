"""The invariants of the design, end to end: simulator → monitor → SQLite → webhook receiver,
in both poll modes.

Every test runs real parts on real sockets: the DLI simulator with AK/SK signature checking,
the monitor built from a config dict exactly as `dli-monitor run` builds it, a temporary state
file, and an in-process webhook receiver. Cycles are driven by hand with a fake clock; a new
`Monitor` over the same state file is a process restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.models import JobState
from tests.conftest import SINGLE, FakeClock, Harness, _harness


@pytest.fixture(params=["incremental", "full"])
async def harness(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Harness]:
    """The harness, once per poll mode: every invariant holds in both."""
    async with _harness(tmp_path, clock) as h:
        h.overrides["poll"] = {"interval": "30s", "listing_attempts": 3, "mode": request.param}
        yield h


async def test_running_to_dead_reaches_the_webhook_exactly_once(harness: Harness) -> None:
    job = harness.world.add_job(queue="etl", name="nightly_etl", state="running", owner="bob")
    async with harness.monitor() as monitor:
        baseline = await monitor.run_cycle()
        assert baseline.ok and baseline.results[0].baseline
        assert harness.receiver.received == []

        harness.world.set_state(job.id, "dead", log_line="YARN Diagnostics: exit code 1")
        harness.clock.advance(30)
        report = await monitor.run_cycle()
        assert report.events == 1 and report.delivered == 1

        harness.clock.advance(30)
        await monitor.run_cycle()
        harness.clock.advance(30)
        await monitor.run_cycle()

    (payload,) = harness.receiver.payloads()
    assert payload["kind"] == "transition"
    assert (payload["from_state"], payload["to_state"]) == ("running", "dead")
    assert payload["job"]["id"] == job.id
    assert payload["job"]["name"] == "nightly_etl"
    assert payload["job"]["owner"] == "bob"
    assert payload["queue"] == "etl"
    assert payload["job"]["log_tail"][-1] == "YARN Diagnostics: exit code 1"


async def test_the_first_poll_is_silent_whatever_the_states(harness: Harness) -> None:
    for state in ("starting", "running", "dead", "success", "recovering"):
        harness.world.add_job(queue="etl", name=f"old-{state}", state=state)
    report = await harness.cycle()
    assert report.ok
    assert report.events == 0
    assert harness.receiver.received == []


async def test_a_job_first_seen_already_dead_alerts(harness: Harness) -> None:
    await harness.cycle()
    short = harness.world.add_job(queue="etl", name="short_lived", state="dead")
    harness.clock.advance(30)
    await harness.cycle()
    (payload,) = harness.receiver.payloads()
    assert payload["kind"] == "appeared"
    assert payload["from_state"] is None
    assert payload["to_state"] == "dead"
    assert payload["job"]["id"] == short.id


async def test_a_change_made_while_the_monitor_was_down_is_reported_after_restart(
    harness: Harness,
) -> None:
    job = harness.world.add_job(queue="etl", name="etl_daily", state="running")
    await harness.cycle()  # first process: baseline, then it stops
    harness.world.set_state(job.id, "dead")
    harness.clock.advance(600)
    report = await harness.cycle()  # second process, same state file
    assert report.events == 1
    (payload,) = harness.receiver.payloads()
    assert (payload["from_state"], payload["to_state"]) == ("running", "dead")


async def test_a_crash_between_commit_and_delivery_delivers_once_after_restart(
    harness: Harness,
) -> None:
    job = harness.world.add_job(queue="etl", name="etl_daily", state="running")
    await harness.cycle()
    harness.world.set_state(job.id, "dead")
    harness.clock.advance(30)

    # The receiver holds the request until we kill the process: the event is committed to the
    # outbox, the POST is in flight, and the process dies before it can mark it delivered.
    harness.receiver.hold()
    async with harness.monitor() as monitor:
        task = asyncio.create_task(monitor.run_cycle())
        await harness.receiver.wait_for_requests(1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    harness.receiver.release()
    assert harness.receiver.answered == []

    harness.clock.advance(30)
    report = await harness.cycle()  # the restarted process re-sends from the outbox
    assert report.events == 0  # the change is not derived a second time
    assert report.delivered == 1
    harness.clock.advance(30)
    await harness.cycle()
    assert [p["to_state"] for p in harness.receiver.answered_payloads()] == ["dead"]


async def test_a_500_on_page_three_of_five_produces_no_event_and_keeps_the_snapshot(
    harness: Harness,
) -> None:
    jobs = [harness.world.add_job(queue="etl", name=f"j{i}", state="running") for i in range(45)]
    await harness.cycle()
    for job in jobs[:5]:
        harness.world.set_state(job.id, "success")
    harness.world.faults.fail("list_batches", status=500, count=2, at_offset=20)
    harness.clock.advance(30)
    failed = await harness.cycle()
    assert not failed.ok
    assert failed.events == 0
    assert harness.receiver.received == []

    harness.clock.advance(30)
    recovered = await harness.cycle()
    assert recovered.ok
    assert recovered.events == 5  # reported once the listing is complete again
    assert sorted(p["to_state"] for p in harness.receiver.payloads()) == ["success"] * 5


async def test_a_job_inserted_while_paging_is_neither_lost_nor_doubled(harness: Harness) -> None:
    for i in range(25):
        harness.world.add_job(queue="etl", name=f"hist{i}", state="success")
    await harness.cycle()
    harness.world.faults.insert_during_paging(
        {"queue": "etl", "name": "newcomer", "state": "dead"}, after_offset=10
    )
    harness.clock.advance(30)
    await harness.cycle()
    harness.clock.advance(30)
    await harness.cycle()
    payloads = harness.receiver.payloads()
    assert [(p["kind"], p["job"]["name"]) for p in payloads] == [("appeared", "newcomer")]


async def test_a_job_that_left_the_listing_is_confirmed_before_anything_is_said(
    harness: Harness,
) -> None:
    gone = harness.world.add_job(queue="etl", name="deleted", state="running")
    hidden = harness.world.add_job(queue="etl", name="hidden", state="running")
    await harness.cycle()
    harness.world.remove_job(gone.id)
    harness.world.hide_from_listing(hidden.id)
    harness.clock.advance(30)
    await harness.cycle()
    assert harness.receiver.payloads()[0]["kind"] == "vanished"
    assert len(harness.receiver.payloads()) == 1

    harness.world.set_state(hidden.id, "dead")
    harness.clock.advance(30)
    await harness.cycle()
    kinds = [(p["kind"], p["job"]["name"], p["to_state"]) for p in harness.receiver.payloads()]
    assert kinds == [("vanished", "deleted", None), ("transition", "hidden", "dead")]


async def test_a_failing_state_call_says_nothing_about_a_missing_job(harness: Harness) -> None:
    job = harness.world.add_job(queue="etl", name="flaky", state="running")
    await harness.cycle()
    harness.world.hide_from_listing(job.id)
    harness.world.faults.fail("get_state", status=500, count=10)
    harness.clock.advance(30)
    report = await harness.cycle()
    assert report.ok
    assert harness.receiver.received == []


async def test_capitalised_and_unknown_states_are_normalised_without_false_events(
    harness: Harness,
) -> None:
    a = harness.world.add_job(queue="etl", name="caps", state="running")
    b = harness.world.add_job(queue="etl", name="weird", state="running")
    await harness.cycle()
    harness.world.set_state(a.id, "Success")
    harness.world.set_state(b.id, "Exploding")
    harness.clock.advance(30)
    await harness.cycle()
    (payload,) = harness.receiver.payloads()
    assert (payload["job"]["name"], payload["to_state"]) == ("caps", "success")


async def test_a_malformed_listing_is_counted_and_produces_no_event(harness: Harness) -> None:
    job = harness.world.add_job(queue="etl", name="x", state="running")
    await harness.cycle()
    harness.world.set_state(job.id, "dead")
    harness.world.faults.malformed("list_batches", body="<html>gateway</html>", count=5)
    harness.clock.advance(30)
    async with harness.monitor() as monitor:
        report = await monitor.run_cycle()
        errors = monitor.metrics.registry.get_sample_value(
            "dli_monitor_poll_errors_total", {**SINGLE, "queue": "etl", "reason": "bad_response"}
        )
    assert not report.ok
    assert errors == 1.0
    assert harness.receiver.received == []


async def test_rows_without_an_id_are_counted_and_skipped(harness: Harness) -> None:
    harness.world.add_job(queue="etl", name="ok", state="running")
    await harness.cycle()
    body = (
        '{"from": 0, "total": 2, "sessions": [{"state": "dead", "queue": "etl"},'
        ' {"id": "11111111-2222-3333-4444-555555555555", "state": "dead", "queue": "etl"}]}'
    )
    harness.world.faults.malformed("list_batches", body=body, count=1)
    harness.clock.advance(30)
    async with harness.monitor() as monitor:
        report = await monitor.run_cycle()
        skipped = monitor.metrics.registry.get_sample_value(
            "dli_monitor_malformed_records_total", {**SINGLE, "queue": "etl"}
        )
    assert report.ok
    assert skipped == 1.0


async def test_a_rejected_webhook_is_recorded_failed_and_not_retried_forever(
    harness: Harness,
) -> None:
    job = harness.world.add_job(queue="etl", name="x", state="running")
    await harness.cycle()
    harness.receiver.script([400])
    harness.world.set_state(job.id, "dead")
    harness.clock.advance(30)
    report = await harness.cycle()
    assert report.failed == 1
    for _ in range(3):
        harness.clock.advance(3600)
        await harness.cycle()
    assert len(harness.receiver.received) == 1


async def test_a_receiver_outage_is_retried_with_backoff_and_delivered_once(
    harness: Harness,
) -> None:
    job = harness.world.add_job(queue="etl", name="x", state="starting")
    await harness.cycle()
    harness.receiver.script([503, 500])
    harness.world.set_state(job.id, "running")
    harness.clock.advance(30)
    async with harness.monitor() as monitor:
        await monitor.run_cycle()  # 503
        await monitor.deliver()  # not due yet: nothing sent
        assert len(harness.receiver.received) == 1
        harness.clock.advance(11)
        await monitor.deliver()  # 500
        harness.clock.advance(61)
        await monitor.deliver()  # 200
        harness.clock.advance(3600)
        await monitor.deliver()
    assert len(harness.receiver.received) == 3
    assert len(harness.receiver.answered_payloads()) == 1
    assert {p["event_id"] for p in harness.receiver.payloads()} == {
        harness.receiver.payloads()[0]["event_id"]
    }


async def test_whole_project_mode_groups_jobs_by_their_own_queue(harness: Harness) -> None:
    a = harness.world.add_job(queue="etl", name="a", state="running")
    b = harness.world.add_job(queue="adhoc", name="b", state="running")
    async with harness.monitor(queues="*") as monitor:
        await monitor.run_cycle()
        harness.world.set_state(a.id, "dead")
        harness.world.set_state(b.id, "success")
        harness.clock.advance(30)
        await monitor.run_cycle()
        dead = monitor.metrics.registry.get_sample_value(
            "dli_batch_jobs", {**SINGLE, "queue": "etl", "state": "dead"}
        )
    assert dead == 1.0
    got = sorted((p["queue"], p["to_state"]) for p in harness.receiver.payloads())
    assert got == [("adhoc", "success"), ("etl", "dead")]


async def test_one_failing_queue_does_not_stop_the_others(harness: Harness) -> None:
    # Per-queue listings: full mode always; incremental mode lists project-wide when that is
    # cheaper, and then a failure is the whole project's (the next test).
    harness.overrides["poll"] = {"mode": "full"}
    a = harness.world.add_job(queue="etl", name="a", state="running")
    b = harness.world.add_job(queue="adhoc", name="b", state="running")
    await harness.cycle(queues=["etl", "adhoc"])
    harness.world.set_state(a.id, "dead")
    harness.world.set_state(b.id, "dead")
    harness.world.faults.fail("list_batches", status=503, count=5, queue="etl")
    harness.clock.advance(30)
    report = await harness.cycle(queues=["etl", "adhoc"])
    assert [r.ok for r in report.results] == [False, True]
    assert [p["queue"] for p in harness.receiver.payloads()] == ["adhoc"]


async def test_a_failed_project_wide_listing_fails_every_queue_without_an_event(
    harness: Harness,
) -> None:
    a = harness.world.add_job(queue="etl", name="a", state="running")
    b = harness.world.add_job(queue="adhoc", name="b", state="running")
    await harness.cycle(queues=["etl", "adhoc"])
    harness.world.set_state(a.id, "dead")
    harness.world.set_state(b.id, "dead")
    harness.world.faults.fail("list_batches", status=503, count=20)
    harness.clock.advance(30)
    report = await harness.cycle(queues=["etl", "adhoc"])
    assert [r.ok for r in report.results] == [False, False]
    assert harness.receiver.payloads() == []
    harness.world.faults.clear()
    harness.clock.advance(30)
    report = await harness.cycle(queues=["etl", "adhoc"])
    assert report.ok
    assert sorted(p["queue"] for p in harness.receiver.payloads()) == ["adhoc", "etl"]


async def test_metrics_reflect_the_snapshot_and_transitions(harness: Harness) -> None:
    job = harness.world.add_job(queue="etl", name="x", state="running")
    async with harness.monitor() as monitor:
        await monitor.run_cycle()
        harness.world.set_state(job.id, "dead")
        harness.clock.advance(30)
        await monitor.run_cycle()
        registry = monitor.metrics.registry
        etl = {**SINGLE, "queue": "etl"}
        assert registry.get_sample_value("dli_batch_jobs", {**etl, "state": "dead"}) == 1
        assert registry.get_sample_value("dli_batch_jobs", {**etl, "state": "running"}) == 0
        assert (
            registry.get_sample_value(
                "dli_batch_job_transitions_total",
                {**SINGLE, "queue": "etl", "from_state": "running", "to_state": "dead"},
            )
            == 1
        )
        assert (
            registry.get_sample_value(
                "dli_monitor_notifications_total", {"sink": "hook", "outcome": "delivered"}
            )
            == 1
        )
        assert monitor.health.ready
    assert JobState.DEAD.is_failure
