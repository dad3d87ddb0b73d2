"""Many DLI projects and regions in one daemon: each watched on its own, none holding another back.

Three simulators on real sockets stand for three projects in two regions (`alpha` and `beta`
share the region name `cn-north-4` through their config; `gamma` is in `eu-west-101`). Each has
its own project id and AK/SK; `gamma` is configured with a wrong secret key. The monitor is
built from a `dli:` list exactly as `dli-monitor run` builds it, cycles are driven by hand with a
fake clock, and a webhook receiver records what reaches each sink.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.app import Monitor
from monitor.config import parse_settings
from monitor.simulator import World, make_app
from tests.conftest import FakeClock
from tests.fakes.receiver import Receiver

PROJECTS = {
    "alpha": ("a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1", "AKALPHA0000000000001", "SK-alpha-secret-0001"),
    "beta": ("b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2", "AKBETA00000000000002", "SK-beta-secret-0002"),
    "gamma": ("c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3", "AKGAMMA0000000000003", "SK-gamma-secret-0003"),
}
"""Name → (project id, access key, secret key) of each simulated project."""
REGIONS = {"alpha": "cn-north-4", "beta": "cn-north-4", "gamma": "eu-west-101"}
QUEUES = {"alpha": ["etl", "adhoc"], "beta": ["etl"], "gamma": ["etl"]}


@dataclass
class Sites:
    """One simulator per project, a receiver, a clock and a state file."""

    worlds: dict[str, World]
    servers: dict[str, TestServer]
    receiver: Receiver
    clock: FakeClock
    state_path: Path
    wrong_secret: set[str] = field(default_factory=lambda: {"gamma"})

    def entry(self, name: str) -> dict[str, Any]:
        """The `dli:` list entry of one project (a wrong SK for the projects meant to fail)."""
        project_id, access_key, secret_key = PROJECTS[name]
        if name in self.wrong_secret:
            secret_key = "SK-that-is-wrong-0000"
        return {
            "name": name,
            "endpoint": str(self.servers[name].make_url("")).rstrip("/"),
            "region": REGIONS[name],
            "project_id": project_id,
            "auth": {"type": "aksk", "access_key": access_key, "secret_key": secret_key},
            "page_size": 10,
            "request_timeout": "2s",
            "max_requests_per_minute": 0,
            "retry": {"attempts": 2, "backoff": [0]},
            "queues": QUEUES[name],
        }

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The monitor's config: the three projects, a webhook sink, the server on a free port."""
        data: dict[str, Any] = {
            "dli": [self.entry(name) for name in PROJECTS],
            "poll": {"interval": "30s", "listing_attempts": 3},
            "state": {"path": str(self.state_path)},
            "server": {"listen": "127.0.0.1:0", "enabled": True},
            "delivery": {"backoff": ["10s"], "max_age": "1h", "timeout": "2s"},
            "sinks": [{"name": "hook", "type": "webhook", "url": self.receiver.url}],
        }
        data.update(overrides)
        return data

    @asynccontextmanager
    async def monitor(self, **overrides: Any) -> AsyncIterator[Monitor]:
        """A monitor process over the shared state file, its HTTP server started."""
        settings = parse_settings(self.config(**overrides))
        async with Monitor(settings, clock=self.clock) as monitor:
            await monitor.start_server()
            yield monitor


@pytest.fixture
async def sites(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Sites]:
    worlds = {name: World(clock=clock) for name in PROJECTS}
    servers = {
        name: TestServer(
            make_app(
                worlds[name],
                project_id=project_id,
                auth="aksk",
                credentials={access_key: secret_key},
                clock=clock,
            )
        )
        for name, (project_id, access_key, secret_key) in PROJECTS.items()
    }
    for server in servers.values():
        await server.start_server()
    try:
        async with Receiver() as receiver:
            yield Sites(worlds, servers, receiver, clock, tmp_path / "state.db")
    finally:
        for server in servers.values():
            await server.close()


def sample(monitor: Monitor, name: str, **labels: str) -> float | None:
    return monitor.metrics.registry.get_sample_value(name, labels)


def at(name: str) -> dict[str, str]:
    """The project labels of one of the simulated projects."""
    return {"project": name, "region": REGIONS[name]}


async def get_json(monitor: Monitor, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{monitor.server_port}{path}") as response,
    ):
        return response.status, await response.json()


async def test_a_project_with_wrong_credentials_fails_alone_and_shows_in_its_own_series(
    sites: Sites,
) -> None:
    jobs = {
        name: sites.worlds[name].add_job(queue="etl", name=f"{name}_job", state="running")
        for name in PROJECTS
    }
    async with sites.monitor() as monitor:
        baseline = await monitor.run_cycle()
        for name in PROJECTS:
            sites.worlds[name].set_state(jobs[name].id, "dead")
        sites.clock.advance(30)
        report = await monitor.run_cycle()

        assert {r.target: r.ok for r in report.results} == {
            "alpha/etl": True,
            "alpha/adhoc": True,
            "beta/etl": True,
            "gamma/etl": False,
        }
        assert not baseline.ok and not report.ok
        up = {name: sample(monitor, "dli_monitor_project_up", **at(name)) for name in PROJECTS}
        assert up == {"alpha": 1.0, "beta": 1.0, "gamma": 0.0}
        last = sample(monitor, "dli_monitor_project_last_success_timestamp_seconds", **at("gamma"))
        assert last == 0.0
        errors = "dli_monitor_poll_errors_total"
        # one per cycle, counted under its own project only
        assert sample(monitor, errors, **at("gamma"), queue="etl", reason="auth") == 2.0
        for name in ("alpha", "beta"):
            assert sample(monitor, errors, **at(name), queue="etl", reason="auth") == 0.0
        requests = "dli_monitor_api_requests_total"
        rejected = sample(monitor, requests, **at("gamma"), operation="list_batches", code="401")
        assert rejected is not None and rejected > 0

        status, health = await get_json(monitor, "/healthz")
        assert status == 200  # a restart would not fix gamma's key: stay alive
        assert health["projects"]["gamma"]["up"] is False
        assert health["projects"]["gamma"]["region"] == "eu-west-101"
        assert health["projects"]["gamma"]["last_success_at"] is None
        assert health["projects"]["alpha"]["up"] is True
        assert health["projects"]["beta"]["consecutive_failed_cycles"] == 0
        ready_status, _ = await get_json(monitor, "/readyz")
        assert ready_status == 200

    payloads = sites.receiver.payloads()
    assert sorted((p["project"], p["region"], p["queue"], p["job"]["id"]) for p in payloads) == [
        ("alpha", "cn-north-4", "etl", jobs["alpha"].id),
        ("beta", "cn-north-4", "etl", jobs["beta"].id),
    ]
    ids = {p["project"]: p["project_id"] for p in payloads}
    assert ids == {"alpha": PROJECTS["alpha"][0], "beta": PROJECTS["beta"][0]}
    assert {p["target"] for p in payloads} == {"alpha/etl", "beta/etl"}


async def test_when_every_project_fails_healthz_says_so(sites: Sites) -> None:
    sites.wrong_secret = set(PROJECTS)
    async with sites.monitor() as monitor:
        await monitor.run_cycle()
        sites.clock.advance(3600)
        await monitor.run_cycle()
        status, health = await get_json(monitor, "/healthz")
    assert status == 503
    assert all(not project["up"] for project in health["projects"].values())


async def test_a_fixed_key_brings_the_project_back_with_a_silent_baseline(sites: Sites) -> None:
    job = sites.worlds["gamma"].add_job(queue="etl", name="g", state="running")
    async with sites.monitor() as monitor:
        await monitor.run_cycle()
    sites.wrong_secret = set()
    sites.clock.advance(30)
    async with sites.monitor() as monitor:
        await monitor.run_cycle()  # gamma's first good poll: its baseline, nothing to say
        sites.worlds["gamma"].set_state(job.id, "dead")
        sites.clock.advance(30)
        await monitor.run_cycle()
        assert sample(monitor, "dli_monitor_project_up", **at("gamma")) == 1.0
    (payload,) = sites.receiver.payloads()
    assert (payload["project"], payload["job"]["id"]) == ("gamma", job.id)


async def test_routes_send_each_projects_events_where_its_route_says(sites: Sites) -> None:
    sites.wrong_secret = set()
    base = sites.receiver.url.removesuffix("/hook")
    sinks = [{"name": n, "type": "webhook", "url": f"{base}/{n}"} for n in ("cn", "eu", "rest")]
    routes = [
        {"match": {"project": "gamma"}, "sinks": ["eu"]},
        {"match": {"project": "alpha", "queue": "adhoc"}, "sinks": ["rest"]},
        {"match": {"project": "[ab]*"}, "sinks": ["cn"]},
    ]
    jobs = [
        (name, queue, sites.worlds[name].add_job(queue=queue, name=f"{name}_{queue}"))
        for name, queues in QUEUES.items()
        for queue in queues
    ]
    async with sites.monitor(sinks=sinks, routes=routes) as monitor:
        await monitor.run_cycle()
        for name, _queue, job in jobs:
            sites.worlds[name].set_state(job.id, "running")
        sites.clock.advance(30)
        await monitor.run_cycle()
    got = sorted(
        (post.path.strip("/"), post.json["project"], post.json["queue"])
        for post in sites.receiver.received
    )
    assert got == [
        ("cn", "alpha", "etl"),
        ("cn", "beta", "etl"),
        ("eu", "gamma", "etl"),
        ("rest", "alpha", "adhoc"),
    ]


async def test_the_same_job_id_in_two_projects_is_two_jobs_with_distinct_event_ids(
    sites: Sites,
) -> None:
    sites.wrong_secret = set()
    shared_id = "0a324461-d9d9-45da-a52a-3b3c7a3d809e"
    for name in ("alpha", "beta"):
        sites.worlds[name].add_job(queue="etl", name="twin", state="running", job_id=shared_id)
    async with sites.monitor() as monitor:
        await monitor.run_cycle()
        for name in ("alpha", "beta"):
            sites.worlds[name].set_state(shared_id, "dead")
        sites.clock.advance(30)
        report = await monitor.run_cycle()
        series = {
            labels["project"]
            for family in monitor.metrics.registry.collect()
            for name, labels, _value, *_ in family.samples
            if name == "dli_batch_job_state" and labels["job_id"] == shared_id
        }
    assert report.events == 2
    payloads = sites.receiver.payloads()
    assert sorted(p["project"] for p in payloads) == ["alpha", "beta"]
    assert {p["job"]["id"] for p in payloads} == {shared_id}
    assert len({p["event_id"] for p in payloads}) == 2
    assert series == {"alpha", "beta"}  # one set of per-job series per project


async def test_a_project_whose_endpoint_hangs_never_delays_the_others(
    sites: Sites, tmp_path: Path
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def hang(_request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({"from": 0, "total": 0, "sessions": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hang)
    async with TestServer(app) as stuck:
        sites.wrong_secret = set()
        data = sites.config()
        data["dli"][2]["endpoint"] = str(stuck.make_url("")).rstrip("/")
        data["dli"][2]["request_timeout"] = "60s"
        job = sites.worlds["alpha"].add_job(queue="etl", name="a", state="running")
        settings = parse_settings(data)
        async with Monitor(settings, clock=sites.clock) as monitor:
            alpha, beta, gamma = monitor.pipelines
            await asyncio.gather(alpha.run_cycle(), beta.run_cycle())
            hung = asyncio.create_task(gamma.run_cycle())
            await arrived.wait()  # gamma's listing is in flight and will not come back
            sites.worlds["alpha"].set_state(job.id, "dead")
            sites.clock.advance(30)
            report = await alpha.run_cycle()
            assert report.ok and report.events == 1 and report.delivered == 1
            assert not hung.done()
            release.set()
            await hung
    (payload,) = sites.receiver.payloads()
    assert (payload["project"], payload["job"]["id"]) == ("alpha", job.id)


async def test_each_project_gets_its_own_client_budget_and_cycle_job(sites: Sites) -> None:
    data = sites.config()
    data["dli"][0]["max_requests_per_minute"] = 6
    async with Monitor(parse_settings(data), clock=sites.clock) as monitor:
        jobs = [pipeline.job_id for pipeline in monitor.pipelines]
        budgets = [pipeline.project.dli.max_requests_per_minute for pipeline in monitor.pipelines]
        clients = {id(pipeline.cycle._client) for pipeline in monitor.pipelines}
    assert jobs == ["poll-cycle:alpha", "poll-cycle:beta", "poll-cycle:gamma"]
    assert budgets == [6, 0, 0]
    assert len(clients) == 3
