"""The lifecycle rules through whole cycles: simulator → monitor → SQLite → webhook receiver.

Stuck, overdue (by a job name's own p95), failure streaks and `recovered`, each observed as
the generic webhook's JSON. `harness.cycle()` builds a new `Monitor` over the same state file
for every cycle, so every second cycle here is also a restart: a rule that fired must not fire
again after one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.conftest import Harness


def by_kind(harness: Harness, kind: str) -> list[dict[str, Any]]:
    return [p for p in harness.receiver.payloads() if p["kind"] == kind]


async def test_a_job_stuck_in_starting_alerts_once_and_not_again_after_a_restart(
    harness: Harness,
) -> None:
    await harness.cycle()  # baseline of an empty queue
    job = harness.world.add_job(queue="etl", name="nightly_etl", state="starting")
    await harness.cycle()
    harness.clock.advance(14 * 60)
    await harness.cycle()
    assert by_kind(harness, "stuck") == []

    harness.clock.advance(3 * 60)
    await harness.cycle()
    harness.clock.advance(60)
    await harness.cycle()  # a restart: the mark in the state file stops a second alert
    async with harness.monitor() as monitor:
        harness.clock.advance(10 * 60)
        await monitor.run_cycle()
        await monitor.run_cycle()

    (stuck,) = by_kind(harness, "stuck")
    assert stuck["job"]["id"] == job.id
    assert (stuck["from_state"], stuck["to_state"]) == ("starting", "starting")
    assert stuck["detail"] == "in starting for 17m (limit 15m)"


async def test_a_stuck_alert_is_cleared_when_the_job_moves_on(harness: Harness) -> None:
    await harness.cycle()
    job = harness.world.add_job(queue="etl", name="nightly_etl", state="starting")
    await harness.cycle()
    harness.clock.advance(16 * 60)
    await harness.cycle()
    harness.world.set_state(job.id, "running")
    harness.world.set_state(job.id, "recovering")
    harness.clock.advance(30)
    await harness.cycle()
    harness.clock.advance(29 * 60)
    await harness.cycle()
    assert len(by_kind(harness, "stuck")) == 1
    harness.clock.advance(2 * 60)
    await harness.cycle()
    second = by_kind(harness, "stuck")[1]
    assert second["detail"] == "in recovering for 31m (limit 30m)"


async def test_the_third_failure_in_a_row_says_so_and_a_success_sends_recovered(
    harness: Harness,
) -> None:
    await harness.cycle()
    for _ in range(3):
        run = harness.world.add_job(queue="etl", name="nightly_etl", state="running")
        await harness.cycle()
        harness.world.set_state(run.id, "dead", log_line="YARN Diagnostics: exit code 1")
        harness.clock.advance(30)
        await harness.cycle()
    good = harness.world.add_job(queue="etl", name="nightly_etl", state="running")
    await harness.cycle()
    harness.world.set_state(good.id, "success")
    harness.clock.advance(30)
    await harness.cycle()
    harness.clock.advance(30)
    await harness.cycle()

    dead = [p for p in harness.receiver.payloads() if p["to_state"] == "dead"]
    assert [p["streak"] for p in dead] == [1, 2, 3]
    (recovered,) = by_kind(harness, "recovered")
    assert recovered["job"]["id"] == good.id
    assert recovered["streak"] == 3
    assert recovered["detail"] == "succeeded after 3 consecutive failures"
    kinds = [p["kind"] for p in harness.receiver.payloads()]
    assert kinds[-2:] == ["transition", "recovered"]


async def test_a_run_three_times_longer_than_its_p95_is_overdue_once(harness: Harness) -> None:
    await harness.cycle()
    for _ in range(5):
        done = harness.world.add_job(
            queue="etl",
            name="hourly_sync",
            state="running",
            created=harness.clock.now - timedelta(minutes=10),
        )
        harness.world.set_state(done.id, "success")
    harness.clock.advance(30)
    await harness.cycle()  # five successful runs of 10m each: a p95 to compare with
    slow = harness.world.add_job(queue="etl", name="hourly_sync", state="running")
    await harness.cycle()
    harness.clock.advance(29 * 60)
    await harness.cycle()
    assert by_kind(harness, "overdue") == []
    harness.clock.advance(2 * 60)
    await harness.cycle()
    harness.clock.advance(60)
    await harness.cycle()

    (overdue,) = by_kind(harness, "overdue")
    assert overdue["job"]["id"] == slow.id
    assert overdue["detail"] == "running for 31m (limit 30m = 3x p95 10m)"


async def test_four_earlier_runs_are_not_enough_for_an_overdue_alert(harness: Harness) -> None:
    await harness.cycle()
    for _ in range(4):
        done = harness.world.add_job(
            queue="etl",
            name="hourly_sync",
            state="running",
            created=harness.clock.now - timedelta(minutes=10),
        )
        harness.world.set_state(done.id, "success")
    await harness.cycle()
    harness.world.add_job(queue="etl", name="hourly_sync", state="running")
    await harness.cycle()
    harness.clock.advance(5 * 3600)
    await harness.cycle()
    assert by_kind(harness, "overdue") == []


async def test_an_absolute_runtime_limit_from_the_config_fires_overdue_once(
    harness: Harness,
) -> None:
    rules = {"overdue": [{"job_name": "report_.*", "max_runtime": "10m"}], "overdue_factor": 0}
    await harness.cycle(rules=rules)
    slow = harness.world.add_job(queue="etl", name="report_daily", state="running")
    other = harness.world.add_job(queue="etl", name="etl_daily", state="running")
    await harness.cycle(rules=rules)
    harness.clock.advance(9 * 60)
    await harness.cycle(rules=rules)
    assert by_kind(harness, "overdue") == []
    harness.clock.advance(2 * 60)
    await harness.cycle(rules=rules)
    harness.clock.advance(5 * 60)
    await harness.cycle(rules=rules)
    (overdue,) = by_kind(harness, "overdue")
    assert overdue["job"]["id"] == slow.id
    assert "10m" in overdue["detail"]
    assert other.id not in {p["job"]["id"] for p in by_kind(harness, "overdue")}
