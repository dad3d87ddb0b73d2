"""Chat sinks through the whole daemon: simulator → cycle → outbox → budgets → fake vendors.

The monitor is built from config exactly as `dli-monitor run` builds it, with a DingTalk robot
and a Slack webhook served by the fake vendors (which answer like the real products), and every
delivery pass is driven on the fake clock, so the test can count sends in any sliding window.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from monitor.app import Monitor
from monitor.store import SqliteStore
from tests.conftest import Harness
from tests.fakes.vendors import FakeVendors


def connection(monitor: Monitor) -> sqlite3.Connection:
    """The monitor's state file, for counting rows the store contract does not list."""
    assert isinstance(monitor.store, SqliteStore)
    return monitor.store.connection


def most_in_any_window(times: list[datetime], window: timedelta) -> int:
    """The largest number of sends that fall inside one window of that length."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_a_burst_of_500_deaths_stays_within_each_chat_budget_and_loses_nothing(
    harness: Harness,
) -> None:
    jobs = [
        harness.world.add_job(queue="etl", name=f"job{i:03}", state="running") for i in range(500)
    ]
    async with FakeVendors(clock=harness.clock) as vendors:
        sinks = [
            {"name": "dt", "type": "dingtalk", "url": vendors.url("dingtalk")},
            {"name": "sl", "type": "slack", "url": vendors.url("slack")},
        ]
        sent: dict[str, list[datetime]] = {"dingtalk": [], "slack": []}

        def note() -> None:
            for product, times in sent.items():
                new = len(vendors.received[product]) - len(times)
                times.extend([harness.clock()] * new)

        async with harness.monitor(sinks=sinks, delivery={"max_age": "1h"}) as monitor:
            await monitor.run_cycle()
            for job in jobs:
                harness.world.set_state(job.id, "dead")
            harness.clock.advance(30)
            report = await monitor.run_cycle()
            assert report.events == 500
            note()
            for _ in range(900):
                if not await monitor.store.pending_by_sink():
                    break
                harness.clock.advance(1)
                await monitor.deliver()
                note()
            assert await monitor.store.pending_by_sink() == {}
            event_ids = [
                row[0] for row in connection(monitor).execute("SELECT event_id FROM events")
            ]
            outcomes = {
                (sink, (await monitor.store.outcome(event_id, sink))[0])
                for event_id in event_ids
                for sink in ("dt", "sl")
            }

    assert len(event_ids) == 500
    assert outcomes == {("dt", "delivered"), ("sl", "delivered")}
    assert most_in_any_window(sent["dingtalk"], timedelta(seconds=60)) <= 20
    assert most_in_any_window(sent["slack"], timedelta(seconds=1)) <= 1
    answers = [r.answer for product in sent for r in vendors.received[product]]
    assert all(a.status == 200 for a in answers)
    assert not any("130101" in a.body for a in answers)
    # far fewer messages than events: the burst was collapsed into digests
    assert len(sent["dingtalk"]) < 50


async def test_a_steady_trickle_of_failures_never_exceeds_the_dingtalk_window(
    harness: Harness,
) -> None:
    jobs = [
        harness.world.add_job(queue="etl", name=f"job{i:03}", state="running") for i in range(120)
    ]
    async with FakeVendors(clock=harness.clock) as vendors:
        sinks = [{"name": "dt", "type": "dingtalk", "url": vendors.url("dingtalk")}]
        times: list[datetime] = []

        def note() -> None:
            new = len(vendors.received["dingtalk"]) - len(times)
            times.extend([harness.clock()] * new)

        async with harness.monitor(sinks=sinks) as monitor:
            await monitor.run_cycle()
            for step in range(40):  # three jobs die every 2 s
                for job in jobs[step * 3 : step * 3 + 3]:
                    harness.world.set_state(job.id, "dead")
                harness.clock.advance(2)
                await monitor.run_cycle()
                note()
            for _ in range(300):
                if not await monitor.store.pending_by_sink():
                    break
                harness.clock.advance(1)
                await monitor.deliver()
                note()
            pending = await monitor.store.pending_by_sink()
            delivered = (
                connection(monitor)
                .execute("SELECT COUNT(*) FROM outbox WHERE sink = 'dt' AND status = 'delivered'")
                .fetchone()[0]
            )

    assert pending == {}
    assert delivered == 120
    assert most_in_any_window(times, timedelta(seconds=60)) <= 20
    assert len(times) > 20  # the budget was actually exercised across several windows
    assert all(r.answer.status == 200 for r in vendors.received["dingtalk"])
