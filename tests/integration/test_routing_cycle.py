"""Routing, quiet hours and silences through whole cycles: simulator → store → webhook sinks.

`RoutedCycle` runs the cycle's public pieces in the cycle's order, with a `Router` in the
commit: the DLI simulator (AK/SK checked) on a real socket, `fetch_listing`, `diff`,
`Store.commit_poll(routing=...)` on a state file, and the `Dispatcher` draining into webhook
sinks built from the config by `build_sinks`. Each sink posts to its own path on one receiver,
so a test sees which sink got what. The last test drives the real `Monitor`, whose cycle
applies the routes and silences itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config import Settings
from monitor.diff import diff, find_missing
from monitor.dispatch import DeliveryPolicy, Dispatcher
from monitor.dli.client import DliClient
from monitor.models import Event
from monitor.poll.listing import ask_states, fetch_listing
from monitor.routing import Router
from monitor.store import Store, open_store
from monitor.wiring import SessionPool, build_auth, build_sinks
from tests.conftest import Harness

NIGHT = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
MORNING = datetime(2026, 11, 29, 23, 0, tzinfo=UTC)  # 07:00 in Shanghai, the next day

ROUTES: list[dict[str, Any]] = [
    {
        "match": {"queue": "etl", "job_name": "nightly_.*", "to_state": ["dead"]},
        "sinks": ["ding"],
        "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Asia/Shanghai"},
    },
    {"match": {"to_state": ["success"]}, "sinks": []},
    {"match": {"job_name": "critical_.*"}, "sinks": ["ding", "slack"], "continue": True},
]


def sink_configs(harness: Harness) -> list[dict[str, Any]]:
    base = harness.receiver.url.removesuffix("/hook")
    return [
        {"name": name, "type": "webhook", "url": f"{base}/{name}"}
        for name in ("ding", "slack", "hook")
    ]


def routed_settings(harness: Harness) -> Settings:
    return harness.settings(
        sinks=sink_configs(harness), routes=ROUTES, default_sinks=["hook"], queues=["etl"]
    )


def by_sink(harness: Harness) -> dict[str, list[tuple[str, str]]]:
    """(job name, to_state) received per sink path."""
    out: dict[str, list[tuple[str, str]]] = {}
    for post in harness.receiver.received:
        payload = post.json
        out.setdefault(post.path.strip("/"), []).append(
            (payload["job"]["name"], payload["to_state"])
        )
    return out


class RoutedCycle:
    """One monitor process: poll → diff → commit with routing → drain, on a shared state file."""

    def __init__(self, harness: Harness, sessions: SessionPool, store: Store) -> None:
        self.harness = harness
        self.settings = routed_settings(harness)
        self.store = store
        self.client = DliClient(
            sessions.get(None, setting="dli.tls"),
            endpoint=self.settings.dli.endpoint,
            project_id=self.settings.dli.project_id,
            auth=build_auth(self.settings, sessions, harness.clock),
            clock=harness.clock,
        )
        self.router = Router.from_settings(
            self.settings.routes,
            [s.name for s in self.settings.sinks],
            default_sinks=self.settings.default_sinks,
            silences=store.active_silences,
        )
        self.dispatcher = Dispatcher(
            store,
            build_sinks(self.settings, sessions),
            policy=DeliveryPolicy(backoff=(10,), max_age_s=86400),
            clock=harness.clock,
        )
        self.silenced: list[Event] = []

    async def run(self) -> list[Event]:
        """One cycle over the `etl` queue; returns the new events (silenced ones included)."""
        now = self.harness.clock()
        state = await self.store.load_target("etl")
        previous = dict(state.jobs) if state else None
        listing = await fetch_listing(self.client, target="etl", page_size=10)
        confirmed = await ask_states(
            self.client, find_missing(previous, listing.jobs), concurrency=2
        )
        result = diff(previous, listing.jobs, target="etl", now=now, confirmed=confirmed)
        routing = await self.router.for_commit(now)
        inserted = await self.store.commit_poll(
            "etl",
            upserts=result.upserts,
            removals=result.removals,
            events=result.events,
            routing=routing,
            now=now,
        )
        self.silenced.extend(event for event, _ in routing.silenced)
        await self.dispatcher.drain()
        return inserted


@asynccontextmanager
async def routed(harness: Harness) -> AsyncIterator[RoutedCycle]:
    """A monitor process over the harness's state file (a new one = a restart)."""
    store = await open_store(harness.state_path)
    try:
        async with SessionPool() as sessions:
            yield RoutedCycle(harness, sessions, store)
    finally:
        await store.close()


async def test_each_failure_reaches_only_the_sinks_its_route_names(harness: Harness) -> None:
    harness.clock.now = NIGHT - timedelta(hours=8)  # 15:00 in Shanghai: no quiet hours
    nightly = harness.world.add_job(queue="etl", name="nightly_etl", state="running")
    adhoc = harness.world.add_job(queue="etl", name="adhoc_report", state="running")
    critical = harness.world.add_job(queue="etl", name="critical_billing", state="running")
    fine = harness.world.add_job(queue="etl", name="nightly_ok", state="running")
    async with routed(harness) as cycle:
        await cycle.run()  # baseline
        for job in (nightly, adhoc, critical):
            harness.world.set_state(job.id, "dead")
        harness.world.set_state(fine.id, "success")
        harness.clock.advance(30)
        events = await cycle.run()

    assert len(events) == 4  # every change is recorded, routed or not
    received = {sink: sorted(posts) for sink, posts in by_sink(harness).items()}
    assert received == {
        "ding": [("critical_billing", "dead"), ("nightly_etl", "dead")],
        "slack": [("critical_billing", "dead")],
        "hook": [("adhoc_report", "dead")],  # default: only what no route matched
    }


async def test_a_failure_in_quiet_hours_waits_for_the_morning_across_a_restart(
    harness: Harness,
) -> None:
    harness.clock.now = NIGHT - timedelta(minutes=30)
    job = harness.world.add_job(queue="etl", name="nightly_etl", state="running")
    async with routed(harness) as cycle:
        await cycle.run()
        harness.world.set_state(job.id, "dead")
        harness.clock.now = NIGHT
        (event,) = await cycle.run()
        assert harness.receiver.received == []
        harness.clock.now = MORNING - timedelta(seconds=1)
        await cycle.run()
        assert harness.receiver.received == []

    store = await open_store(harness.state_path)
    try:
        assert await store.next_due_at() == MORNING
    finally:
        await store.close()
    harness.clock.now = MORNING  # a new process after the quiet period
    async with routed(harness) as cycle:
        await cycle.run()

    assert by_sink(harness) == {"ding": [("nightly_etl", "dead")]}
    assert harness.receiver.event_ids() == [event.event_id]


async def test_a_silenced_failure_is_recorded_but_not_sent_until_the_silence_is_expired(
    harness: Harness,
) -> None:
    harness.clock.now = NIGHT - timedelta(hours=8)
    job = harness.world.add_job(queue="etl", name="adhoc_report", state="running")
    async with routed(harness) as cycle:
        await cycle.run()
        silence = await cycle.store.add_silence(
            job_name="adhoc_.*",
            queue="et?",
            starts_at=harness.clock(),
            ends_at=harness.clock() + timedelta(hours=2),
        )
        harness.world.set_state(job.id, "dead")
        harness.clock.advance(30)
        (muted,) = await cycle.run()
        assert cycle.silenced == [muted]
        assert harness.receiver.received == []
        assert await cycle.store.pending_by_sink() == {}

        await cycle.store.expire_silence(silence.id, harness.clock())
        harness.world.set_state(job.id, "running")
        harness.clock.advance(30)
        await cycle.run()
        harness.world.set_state(job.id, "dead")
        harness.clock.advance(30)
        (loud,) = await cycle.run()

    assert by_sink(harness) == {"hook": [("adhoc_report", "running"), ("adhoc_report", "dead")]}
    assert harness.receiver.event_ids()[-1] == loud.event_id
    assert loud.event_id != muted.event_id


async def test_the_daemon_itself_applies_routes_and_silences(harness: Harness) -> None:
    harness.clock.now = NIGHT - timedelta(hours=8)
    silenced = harness.world.add_job(queue="etl", name="adhoc_report", state="running")
    nightly = harness.world.add_job(queue="etl", name="nightly_etl", state="running")
    overrides = {
        "sinks": sink_configs(harness),
        "routes": ROUTES,
        "default_sinks": ["hook"],
    }
    async with harness.monitor(**overrides) as monitor:
        await monitor.run_cycle()
        await monitor.store.add_silence(
            job_name="adhoc_.*",
            starts_at=harness.clock(),
            ends_at=harness.clock() + timedelta(hours=1),
        )
        harness.world.set_state(silenced.id, "dead")
        harness.world.set_state(nightly.id, "dead")
        harness.clock.advance(30)
        report = await monitor.run_cycle()

    assert report.events == 2
    assert by_sink(harness) == {"ding": [("nightly_etl", "dead")]}
