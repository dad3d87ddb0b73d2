"""Incremental polling through the simulator: what it costs, and the edge cases it must survive.

Real parts on real sockets (the simulator with AK/SK checks, the monitor built from a config
dict, a temporary state file, the webhook receiver), a fake clock, cycles driven by hand. The
harness pages by 10, so a few dozen jobs make multi-page listings.
"""

from __future__ import annotations

import random
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from monitor.app import Monitor
from monitor.simulator import World
from tests.conftest import SINGLE, FakeClock, Harness, _harness

QUIET = {"interval": "30s", "mode": "incremental", "full_resync": "0s"}


def requests_of(world: World, since: int) -> list[dict[str, str]]:
    """The queries of the requests the simulator answered after the first `since`."""
    return [r.query | {"op": r.operation} for r in world.requests[since:]]


def add_history(world: World, count: int, *, queue: str = "etl", hours: float = 48) -> None:
    """Ended jobs created over the past `hours`, oldest first."""
    start = world.clock() - timedelta(hours=hours)
    step = timedelta(hours=hours) / max(count, 1)
    for index in range(count):
        state = "dead" if index % 10 == 0 else "success"
        world.add_job(queue=queue, name=f"hist{index}", state=state, created=start + step * index)


def events(harness: Harness) -> list[tuple[str, str | None, str | None]]:
    """(job name, from, to) of every payload received, in order."""
    return [(p["job"]["name"], p["from_state"], p["to_state"]) for p in harness.receiver.payloads()]


async def test_a_quiet_cycle_costs_four_requests_however_long_the_history(
    harness: Harness,
) -> None:
    harness.overrides["poll"] = QUIET
    add_history(harness.world, 500)
    for index in range(3):
        harness.world.add_job(queue="etl", name=f"live{index}", state="running")
    async with harness.monitor() as monitor:
        await monitor.run_cycle()
        harness.clock.advance(30)
        before = len(harness.world.requests)
        report = await monitor.run_cycle()
    assert report.ok and report.events == 0
    sent = requests_of(harness.world, before)
    assert sorted(q.get("state", "walk") for q in sent) == [
        "recovering",
        "running",
        "starting",
        "walk",
    ]
    assert all("queue_name" not in q for q in sent)  # one queue: project-wide is as cheap


async def test_full_mode_pays_for_the_whole_history_every_cycle(harness: Harness) -> None:
    harness.overrides["poll"] = {"interval": "30s", "mode": "full"}
    add_history(harness.world, 500)
    async with harness.monitor() as monitor:
        await monitor.run_cycle()
        before = len(harness.world.requests)
        await monitor.run_cycle()
    assert len(requests_of(harness.world, before)) == 51


async def test_a_job_living_less_than_one_interval_is_reported_dead(harness: Harness) -> None:
    harness.overrides["poll"] = QUIET
    add_history(harness.world, 30)
    await harness.cycle()
    short = harness.world.add_job(queue="etl", name="blink", state="starting")
    harness.clock.advance(5)
    harness.world.set_state(short.id, "running")
    harness.clock.advance(5)
    harness.world.set_state(short.id, "dead")
    harness.clock.advance(20)
    await harness.cycle()
    assert events(harness) == [("blink", None, "dead")]


async def test_a_running_job_that_dies_is_reported_once(harness: Harness) -> None:
    harness.overrides["poll"] = QUIET
    add_history(harness.world, 30)
    job = harness.world.add_job(queue="etl", name="etl-main", state="running")
    await harness.cycle()
    harness.world.set_state(job.id, "dead")
    for _ in range(3):
        harness.clock.advance(30)
        await harness.cycle()
    assert events(harness) == [("etl-main", "running", "dead")]


async def test_an_order_not_honoured_falls_back_to_a_full_listing_and_says_so(
    harness: Harness,
) -> None:
    harness.overrides["poll"] = QUIET
    add_history(harness.world, 40)
    job = harness.world.add_job(queue="etl", name="etl-main", state="running")
    await harness.cycle()
    harness.world.list_order = "shuffled"
    harness.world.set_state(job.id, "dead")
    harness.clock.advance(30)
    newcomer = harness.world.add_job(queue="etl", name="newcomer", state="dead")
    with capture_logs() as logs:
        async with harness.monitor() as monitor:
            report = await monitor.run_cycle()
            fallbacks = monitor.metrics.registry.get_sample_value(
                "dli_monitor_poll_fallbacks_total", {**SINGLE, "reason": "order"}
            )
    assert report.ok
    assert fallbacks == 1.0
    assert any(entry["event"].startswith("listing order not honoured") for entry in logs)
    assert sorted(events(harness)) == [("etl-main", "running", "dead"), ("newcomer", None, "dead")]
    assert newcomer.id in {p["job"]["id"] for p in harness.receiver.payloads()}


async def test_a_job_the_state_call_does_not_find_is_reported_vanished(harness: Harness) -> None:
    harness.overrides["poll"] = QUIET
    job = harness.world.add_job(queue="etl", name="ghost", state="running")
    await harness.cycle()
    harness.world.remove_job(job.id)
    harness.clock.advance(30)
    await harness.cycle()
    (payload,) = harness.receiver.payloads()
    assert payload["kind"] == "vanished"
    assert payload["job"]["id"] == job.id


async def test_an_active_listing_failing_on_its_second_page_says_nothing(
    harness: Harness,
) -> None:
    harness.overrides["poll"] = QUIET
    jobs = [harness.world.add_job(queue="etl", name=f"r{i}", state="running") for i in range(15)]
    await harness.cycle()
    harness.world.set_state(jobs[0].id, "dead")
    harness.world.faults.fail("list_batches", status=500, count=50, at_offset=10)
    harness.clock.advance(30)
    before = len(harness.world.requests)
    report = await harness.cycle()
    assert not report.ok
    assert harness.receiver.payloads() == []
    assert [q for q in requests_of(harness.world, before) if q["op"] == "get_state"] == []
    harness.world.faults.clear()
    harness.clock.advance(30)
    assert (await harness.cycle()).ok
    assert events(harness) == [("r0", "running", "dead")]


async def test_a_job_inserted_mid_listing_is_neither_lost_nor_doubled(harness: Harness) -> None:
    harness.overrides["poll"] = QUIET
    for index in range(25):
        harness.world.add_job(queue="etl", name=f"r{index}", state="running")
    await harness.cycle()
    harness.world.faults.insert_during_paging(
        {"queue": "etl", "name": "newcomer", "state": "running"}, after_offset=10
    )
    harness.clock.advance(30)
    with capture_logs() as logs:
        first = await harness.cycle()
    for _ in range(2):
        harness.clock.advance(30)
        await harness.cycle()
    assert first.ok  # the shifted listing was listed again within the cycle
    assert any(entry["event"] == "listing shifted; listing again" for entry in logs)
    assert events(harness) == [("newcomer", None, "running")]


@pytest.mark.parametrize("total_mode", ["all", "page"])
async def test_the_meaning_of_total_changes_no_event(harness: Harness, total_mode: Any) -> None:
    harness.world.total_mode = total_mode
    harness.overrides["poll"] = QUIET
    add_history(harness.world, 35)
    jobs = [harness.world.add_job(queue="etl", name=f"r{i}", state="running") for i in range(23)]
    await harness.cycle()
    harness.world.set_state(jobs[3].id, "dead")
    harness.world.set_state(jobs[17].id, "success")
    harness.clock.advance(30)
    harness.world.add_job(queue="etl", name="late", state="dead")
    report = await harness.cycle()
    assert report.ok
    assert sorted(events(harness)) == [
        ("late", None, "dead"),
        ("r17", "running", "success"),
        ("r3", "running", "dead"),
    ]


async def _move_the_high_water(harness: Harness, monitor: Monitor) -> None:
    """Five cycles ten minutes apart, four new jobs each: the walk's floor moves on."""
    for step in range(5):
        harness.clock.advance(600)
        for index in range(4):
            harness.world.add_job(queue="etl", name=f"new{step}-{index}", state="running")
        await monitor.run_cycle()


async def test_reconciliation_finds_a_job_the_newest_first_walk_could_not_reach(
    harness: Harness,
) -> None:
    harness.overrides["poll"] = {**QUIET, "full_resync": "1s"}
    add_history(harness.world, 30)
    async with harness.monitor() as monitor:
        await monitor.run_cycle()
        await _move_the_high_water(harness, monitor)
        late = harness.world.add_job(
            queue="etl", name="late", state="dead", created=harness.clock() - timedelta(minutes=25)
        )
        harness.clock.advance(30)
        await monitor.run_cycle()
        found = monitor.metrics.registry.get_sample_value(
            "dli_monitor_reconcile_discrepancies_total", {**SINGLE, "queue": "etl"}
        )
    late_events = [p for p in harness.receiver.payloads() if p["job"]["id"] == late.id]
    assert [(p["kind"], p["to_state"]) for p in late_events] == [("appeared", "dead")]
    assert found == 1.0


async def test_without_reconciliation_that_job_goes_unseen(harness: Harness) -> None:
    harness.overrides["poll"] = QUIET
    add_history(harness.world, 30)
    async with harness.monitor() as monitor:
        await monitor.run_cycle()
        await _move_the_high_water(harness, monitor)
        harness.world.add_job(
            queue="etl", name="late", state="dead", created=harness.clock() - timedelta(minutes=25)
        )
        harness.clock.advance(30)
        await monitor.run_cycle()
    assert "late" not in {name for name, _f, _t in events(harness)}


async def test_the_budget_stretches_the_interval_and_says_so_once(harness: Harness) -> None:
    harness.overrides["poll"] = {**QUIET, "interval": "1s"}
    overrides = {"dli": {**harness.config()["dli"], "max_requests_per_minute": 60}}
    harness.world.add_job(queue="etl", name="x", state="running")
    with capture_logs() as logs:
        async with harness.monitor(**overrides) as monitor:
            await monitor.run_cycle()
            harness.clock.advance(5)
            await monitor.run_cycle()
            gauge = monitor.metrics.registry.get_sample_value(
                "dli_monitor_effective_poll_interval_seconds", SINGLE
            )
            interval = monitor.interval_s
    assert interval == 4.0  # four requests a cycle at one request a second
    assert gauge == 4.0
    stretched = [e for e in logs if e["event"].startswith("poll interval stretched")]
    assert len(stretched) == 1
    assert stretched[0]["configured_s"] == 1.0 and stretched[0]["effective_s"] == 4.0


async def test_state_calls_wait_for_the_budget_and_nothing_is_said_meanwhile(
    harness: Harness,
) -> None:
    harness.overrides["poll"] = {**QUIET, "interval": "1s", "overlap": "1s"}
    overrides = {"dli": {**harness.config()["dli"], "max_requests_per_minute": 60}}
    an_hour_ago = harness.clock() - timedelta(hours=1)
    jobs = [
        harness.world.add_job(queue="etl", name=f"r{i}", state="running", created=an_hour_ago)
        for i in range(3)
    ]
    add_history(harness.world, 12, hours=0.5)  # the walk's first page holds only these
    async with harness.monitor(**overrides) as monitor:
        await monitor.run_cycle()  # 4 requests: the allowance becomes 4 a cycle
        for job in jobs:
            harness.world.set_state(job.id, "dead")
        harness.clock.advance(5)
        before = len(harness.world.requests)
        first = await monitor.run_cycle()
        asked_first = [q for q in requests_of(harness.world, before) if q["op"] == "get_state"]
        harness.clock.advance(10)
        await monitor.run_cycle()
    assert first.events == 0 and asked_first == []  # listings first; confirmations next cycle
    assert sorted(events(harness)) == [(f"r{i}", "running", "dead") for i in range(3)]


async def _scenario_events(
    tmp_path: Path, mode: str, seed: int, page_size: int = 10
) -> list[tuple[Any, ...]]:
    """Run one seeded scenario of starts, ends and short-lived jobs; the events it produced."""
    rng = random.Random(seed)
    async with _harness(tmp_path / mode, FakeClock()) as harness:
        harness.overrides["poll"] = {"interval": "30s", "mode": mode, "full_resync": "10m"}
        harness.overrides["dli"] = {**harness.config()["dli"], "page_size": page_size}
        add_history(harness.world, 60)
        live: list[str] = []
        async with harness.monitor() as monitor:
            await monitor.run_cycle()
            for step in range(30):
                harness.clock.advance(30)
                _scenario_step(harness.world, rng, live, step)
                await monitor.run_cycle()
            # nothing was left for reconciliation to find, and the order always held
            assert _sample_sum(monitor, "dli_monitor_reconcile_discrepancies_total") == 0
            assert _sample_sum(monitor, "dli_monitor_poll_fallbacks_total") == 0
        return sorted(
            (p["kind"], p["job"]["name"], p["from_state"], p["to_state"])
            for p in harness.receiver.payloads()
        )


def _sample_sum(monitor: Monitor, name: str) -> float:
    """The sum of every sample of one series name."""
    return sum(
        sample.value
        for family in monitor.metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    )


def _scenario_step(world: World, rng: random.Random, live: list[str], step: int) -> None:
    """Start a few jobs, move some along, end some (a tenth of the ends dead), blink some."""
    moves = {"starting": ["running"], "recovering": ["running"], "running": ["recovering"]}
    for index in range(rng.randint(0, 4)):
        job = world.add_job(queue=rng.choice(["etl", "adhoc"]), name=f"j{step}-{index}")
        live.append(job.id)
    for job_id in list(live):
        if rng.random() > 0.4:
            continue
        state = world.get(job_id).state
        if state == "running" and rng.random() < 0.6:
            world.set_state(job_id, "dead" if rng.random() < 0.1 else "success")
            live.remove(job_id)
        else:
            world.set_state(job_id, rng.choice(moves[state]))
    if rng.random() < 0.3:
        blink = world.add_job(queue="etl", name=f"blink{step}")
        world.set_state(blink.id, rng.choice(["dead", "success"]))


@pytest.mark.parametrize("seed", [7, 2026])
async def test_both_modes_report_the_same_events_on_a_seeded_scenario(
    tmp_path: Path, seed: int
) -> None:
    incremental = await _scenario_events(tmp_path, "incremental", seed)
    full = await _scenario_events(tmp_path, "full", seed)
    assert len(incremental) > 40
    assert incremental == full


async def test_job_counts_include_the_history_memory_does_not_hold(harness: Harness) -> None:
    harness.overrides["poll"] = {**QUIET, "full_resync": "1s"}
    add_history(harness.world, 100)  # 10 dead, 90 success, two days old
    job = harness.world.add_job(queue="etl", name="live", state="running")

    def counts(monitor: Monitor) -> tuple[float | None, ...]:
        registry = monitor.metrics.registry
        return tuple(
            registry.get_sample_value("dli_batch_jobs", {**SINGLE, "queue": "etl", "state": state})
            for state in ("running", "dead", "success")
        )

    async with harness.monitor() as monitor:
        await monitor.run_cycle()  # the baseline and a whole reconciliation pass
        assert counts(monitor) == (1.0, 10.0, 90.0)
        memory = await monitor.cycle.snapshot("etl") or {}
        assert len(memory) == 3  # the active job, and two that ended within the series TTL
        assert all(not j.log_tail for j in memory.values() if j.state.is_terminal)
        harness.world.set_state(job.id, "dead")
        harness.clock.advance(30)
        await monitor.run_cycle()
        assert counts(monitor) == (0.0, 11.0, 90.0)
    harness.clock.advance(7200)  # the ended job leaves memory; a restart counts from the store
    async with harness.monitor() as monitor:
        await monitor.run_cycle()
        assert counts(monitor) == (0.0, 11.0, 90.0)
        assert await monitor.cycle.snapshot("etl") == {}


async def test_a_state_file_kept_by_full_listings_carries_on_incrementally(
    harness: Harness,
) -> None:
    add_history(harness.world, 40)
    job = harness.world.add_job(queue="etl", name="live", state="running")
    harness.overrides["poll"] = {"interval": "30s", "mode": "full"}
    await harness.cycle()
    harness.overrides["poll"] = QUIET
    harness.clock.advance(30)
    quiet = await harness.cycle()
    harness.world.set_state(job.id, "dead")
    harness.clock.advance(30)
    harness.world.add_job(queue="etl", name="blink", state="dead")
    harness.clock.advance(30)
    await harness.cycle()
    assert quiet.ok and quiet.events == 0
    assert sorted(events(harness)) == [("blink", None, "dead"), ("live", "running", "dead")]


async def test_a_burst_of_deaths_is_read_from_the_dead_listing_not_job_by_job(
    harness: Harness,
) -> None:
    harness.overrides["poll"] = QUIET
    add_history(harness.world, 40, hours=0.4)
    async with harness.monitor() as monitor:
        await monitor.run_cycle()
        harness.clock.advance(30)
        burst = [
            harness.world.add_job(queue="etl", name=f"b{i}", state="running") for i in range(30)
        ]
        await monitor.run_cycle()
        for name, count in (("middle", 15), ("later", 12)):  # the walk's floor moves past them
            harness.clock.advance(300)
            for index in range(count):
                harness.world.add_job(queue="etl", name=f"{name}{index}", state="running")
            await monitor.run_cycle()
        harness.clock.advance(60)
        for job in burst:
            harness.world.set_state(job.id, "dead")
        before = len(harness.world.requests)
        report = await monitor.run_cycle()
    sent = requests_of(harness.world, before)
    state_calls = [q for q in sent if q["op"] == "get_state"]
    dead_walk = [q for q in sent if q.get("state") == "dead"]
    assert report.events == 30
    assert len(dead_walk) == 3 and state_calls == []  # 30 rows at 10 a page, nothing else
    # walk 2, running 3 (+2 asked ahead: it had 5 full pages last cycle), starting, recovering
    assert len(sent) == 7 + 2 + 3
    died = [name for name, _f, to in events(harness) if to == "dead"]
    assert sorted(died) == sorted(f"b{i}" for i in range(30))


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32), page_size=st.sampled_from([2, 3, 10, 50]))
async def test_both_modes_agree_on_any_generated_history(seed: int, page_size: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        incremental = await _scenario_events(Path(folder), "incremental", seed, page_size)
        full = await _scenario_events(Path(folder), "full", seed, page_size)
    assert incremental == full


async def test_several_jobs_started_while_the_walk_pages_do_not_look_like_disorder(
    harness: Harness,
) -> None:
    harness.overrides["poll"] = QUIET
    add_history(harness.world, 30, hours=0.2)
    await harness.cycle()
    for index in range(15):  # a page and a half of new jobs since the last walk
        harness.clock.advance(1)
        harness.world.add_job(queue="etl", name=f"early{index}", state="running")
    for index in range(5):  # five more start between the walk's first and second page
        harness.world.faults.insert_during_paging(
            {"queue": "etl", "name": f"late{index}", "state": "dead"}, after_offset=10
        )
    harness.clock.advance(1)
    async with harness.monitor() as monitor:
        report = await monitor.run_cycle()
        fallbacks = monitor.metrics.registry.get_sample_value(
            "dli_monitor_poll_fallbacks_total", {**SINGLE, "reason": "order"}
        )
    assert report.ok and fallbacks == 0.0
    names = {name for name, _f, _t in events(harness)}
    assert {f"early{i}" for i in range(15)} <= names
