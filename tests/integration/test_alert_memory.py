"""Alertmanager alerts survive a restart: the firing table is rebuilt from the state.

The Alertmanager sink keeps re-posting a firing alert (`refresh`) so that Alertmanager does not
resolve it by itself after `resolve_timeout`. The table it re-posts from used to live in memory
only: after a restart, a job that was still dead looked resolved to everyone watching
Alertmanager. Now a new process (or a replica that starts leading) replays the events the sink
was delivered. The harness's receiver plays Alertmanager; the monitors share one state file, or
one PostgreSQL database for the takeover.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from monitor.app import Monitor
from monitor.sinks import AlertmanagerSink
from tests.conftest import Harness
from tests.integration.test_leadership import replica


def am_sinks(harness: Harness) -> list[dict[str, Any]]:
    alertmanager = harness.receiver.url.removesuffix("/hook")
    return [{"name": "am", "type": "alertmanager", "url": alertmanager}]


def sink_of(monitor: Monitor) -> AlertmanagerSink:
    sink = monitor.sinks["am"]
    assert isinstance(sink, AlertmanagerSink)
    return sink


def alerts(harness: Harness) -> list[dict[str, Any]]:
    """Every alert the receiver got, in order."""
    return [alert for body in harness.receiver.payloads() for alert in body]


async def test_a_restarted_monitor_keeps_re_posting_the_alert_of_a_job_still_dead(
    harness: Harness,
) -> None:
    job = harness.world.add_job(queue="etl", name="nightly_etl", state="running")
    other = harness.world.add_job(queue="etl", name="hourly", state="running")
    sinks = am_sinks(harness)
    async with harness.monitor(sinks=sinks) as monitor:
        await monitor.run_cycle()
        harness.world.set_state(job.id, "dead")
        harness.world.set_state(other.id, "dead")
        harness.clock.advance(30)
        assert (await monitor.run_cycle()).delivered == 2
        harness.world.set_state(other.id, "success")  # a DLI job can be re-run under its id
        harness.clock.advance(30)
        await monitor.run_cycle()
    fired = {a["labels"]["job_id"]: a for a in alerts(harness) if a["labels"]["job_id"] == job.id}
    harness.receiver.received.clear()

    harness.clock.advance(60)
    async with harness.monitor(sinks=sinks) as restarted:
        assert [a.job_id for a in sink_of(restarted).active] == [job.id]
        assert await sink_of(restarted).refresh() == 1

    (reposted,) = alerts(harness)
    assert reposted["labels"] == fired[job.id]["labels"]
    assert reposted["startsAt"] == fired[job.id]["startsAt"]  # the same alert, not a new one
    assert reposted["endsAt"] > fired[job.id]["endsAt"]


async def test_after_a_restart_the_next_good_run_resolves_the_alert_fired_before_it(
    harness: Harness,
) -> None:
    first = harness.world.add_job(queue="etl", name="nightly_etl", state="running")
    sinks = am_sinks(harness)
    async with harness.monitor(sinks=sinks) as monitor:
        await monitor.run_cycle()
        harness.world.set_state(first.id, "dead")
        harness.clock.advance(30)
        await monitor.run_cycle()
    harness.receiver.received.clear()

    second = harness.world.add_job(queue="etl", name="nightly_etl", state="running")
    harness.clock.advance(30)
    async with harness.monitor(sinks=sinks) as restarted:
        await restarted.run_cycle()
        harness.world.set_state(second.id, "success")
        harness.clock.advance(30)
        await restarted.run_cycle()
        assert sink_of(restarted).active == ()

    (resolved,) = [a for a in alerts(harness) if a["labels"]["job_id"] == first.id]
    assert resolved["annotations"]["resolved_by"].startswith(f"nightly_etl ({second.id})")


async def test_alerts_older_than_max_alert_age_are_not_restored(harness: Harness) -> None:
    job = harness.world.add_job(queue="etl", name="nightly_etl", state="running")
    sinks = [{**am_sinks(harness)[0], "max_alert_age": "1h"}]
    async with harness.monitor(sinks=sinks) as monitor:
        await monitor.run_cycle()
        harness.world.set_state(job.id, "dead")
        harness.clock.advance(30)
        await monitor.run_cycle()

    harness.clock.advance(2 * 3600)
    async with harness.monitor(sinks=sinks) as restarted:
        assert sink_of(restarted).active == ()


async def test_a_replica_that_takes_over_re_posts_what_the_previous_leader_fired(
    harness: Harness, pg_dsn: str
) -> None:
    job = harness.world.add_job(queue="etl", name="nightly_etl", state="running")
    sinks = am_sinks(harness)
    harness.overrides["sinks"] = sinks
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(replica(harness, pg_dsn))
        assert await a.leadership.wait_leading(5)
        b = await stack.enter_async_context(replica(harness, pg_dsn))
        await a.run_cycle()
        harness.world.set_state(job.id, "dead")
        assert (await a.run_cycle()).delivered == 1
        assert sink_of(b).active == ()  # a standby that started before the alert fired
        await a.leadership.stop()
        assert await b.leadership.wait_leading(5)
        await b.run_cycle()  # the first run of b's term reloads what a left in the store
        assert [alert.job_id for alert in sink_of(b).active] == [job.id]
