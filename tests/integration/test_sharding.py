"""Sharding, kube-state-metrics style: three monitors split 30 targets, each watched exactly once.

Three simulators on real sockets stand for three projects of ten queues each. Three monitors,
each with its own SQLite state file and its own webhook path, run as shards 0, 1 and 2 of 3
(`Monitor(settings, shard=Shard(i, 3))`, what `--shard i --total-shards 3` builds). What each
shard asked the simulators for is read from their recorded requests; what each reported is
read from its path on the receiver. Cycles are driven by hand with a fake clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from monitor.app import Monitor
from monitor.config import parse_settings
from monitor.pipeline import shard_key
from monitor.shard import Shard, shard_of
from monitor.simulator import World, make_app
from tests.conftest import FakeClock
from tests.fakes.receiver import Receiver

PROJECTS = ("p0", "p1", "p2")
QUEUES = tuple(f"q{index}" for index in range(10))
TOTAL = 3


@dataclass
class Fleet:
    """The simulators, the receiver and the clock the three shards share."""

    worlds: dict[str, World]
    servers: dict[str, TestServer]
    receiver: Receiver
    clock: FakeClock
    tmp_path: Path

    def config(self, shard: int, mode: str) -> dict[str, Any]:
        """Shard `shard`'s config: the same projects, its own state file and webhook path."""
        base = self.receiver.url.removesuffix("/hook")
        return {
            "dli": [
                {
                    "name": name,
                    "endpoint": str(self.servers[name].make_url("")).rstrip("/"),
                    "region": f"sim-{name}",
                    "project_id": f"{name}0000000000000000000000000000",
                    "auth": {"type": "none"},
                    "page_size": 10,
                    "max_requests_per_minute": 0,
                    "retry": {"attempts": 2, "backoff": [0]},
                    "queues": list(QUEUES),
                }
                for name in PROJECTS
            ],
            "poll": {"interval": "30s", "mode": mode},
            "state": {"path": str(self.tmp_path / f"shard-{shard}.db")},
            "server": {"enabled": False},
            "sinks": [{"name": "hook", "type": "webhook", "url": f"{base}/shard-{shard}"}],
        }

    def forget_requests(self) -> None:
        for world in self.worlds.values():
            world.requests.clear()

    def queues_asked(self) -> set[tuple[str, str]]:
        """(project, queue) of every request since `forget_requests` that named a queue."""
        return {
            (name, request.query["queue_name"])
            for name, world in self.worlds.items()
            for request in world.requests
            if "queue_name" in request.query
        }

    async def cycle(self, shard: int, mode: str) -> set[tuple[str, str]]:
        """One cycle of shard `shard` in a fresh process; the targets it asked about."""
        self.forget_requests()
        settings = parse_settings(self.config(shard, mode))
        async with Monitor(settings, clock=self.clock, shard=Shard(shard, TOTAL)) as monitor:
            report = await monitor.run_cycle()
        assert report.ok, report
        return self.queues_asked()


@pytest.fixture
async def fleet(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Fleet]:
    worlds = {name: World(clock=clock) for name in PROJECTS}
    servers = {
        name: TestServer(make_app(worlds[name], project_id=f"{name}{'0' * 28}", clock=clock))
        for name in PROJECTS
    }
    for server in servers.values():
        await server.start_server()
    try:
        async with Receiver() as receiver:
            yield Fleet(worlds, servers, receiver, clock, tmp_path)
    finally:
        for server in servers.values():
            await server.close()


def owner(project: str, queue: str) -> int:
    """The shard that owns a target, by the documented hash of `<project>/<queue>`."""
    return shard_of(f"{project}/{queue}", TOTAL)


@pytest.mark.parametrize("mode", ["full", "incremental"])
async def test_three_shards_watch_thirty_targets_each_exactly_once(fleet: Fleet, mode: str) -> None:
    targets = {(project, queue) for project in PROJECTS for queue in QUEUES}
    owned = {shard: {t for t in targets if owner(*t) == shard} for shard in range(TOTAL)}
    assert all(owned.values())  # the hash spreads 30 targets over all three shards
    jobs = {
        target: fleet.worlds[target[0]].add_job(queue=target[1], name=f"job_{target[1]}")
        for target in sorted(targets)
    }

    for shard in range(TOTAL):  # the baselines
        asked = await fleet.cycle(shard, mode)
        assert asked <= owned[shard], asked - owned[shard]
        if mode == "full":
            assert asked == owned[shard]

    fleet.clock.advance(15)  # changes come after the baselines were taken
    truth: Counter[tuple[str, str, str, str]] = Counter()
    for index, ((project, queue), job) in enumerate(sorted(jobs.items())):
        state = ("running", "dead", "success")[index % 3]
        fleet.worlds[project].set_state(job.id, state)
        truth[(project, queue, job.id, state)] += 1
        if index % 4 == 0:  # and a short-lived job that died between two cycles
            late = fleet.worlds[project].add_job(queue=queue, name="late", state="dead")
            truth[(project, queue, late.id, "dead")] += 1
    fleet.clock.advance(15)

    for shard in range(TOTAL):
        asked = await fleet.cycle(shard, mode)
        assert asked <= owned[shard], asked - owned[shard]

    got: Counter[tuple[str, str, str, str]] = Counter()
    for post in fleet.receiver.received:
        payload, shard = post.json, int(post.path.rsplit("-", 1)[1])
        assert (payload["project"], payload["queue"]) in owned[shard]
        assert payload["region"] == f"sim-{payload['project']}"
        got[(payload["project"], payload["queue"], payload["job"]["id"], payload["to_state"])] += 1
    assert got == truth  # the union of the shards' events is the ground truth, nothing twice
    event_ids = fleet.receiver.event_ids()
    assert len(event_ids) == len(set(event_ids))


async def test_a_shard_that_owns_nothing_of_a_project_never_calls_it(fleet: Fleet) -> None:
    data = fleet.config(0, "full")
    data["dli"][0]["queues"] = ["q0"]
    settings = parse_settings(data)
    single = settings.projects[0]
    stranger = next(i for i in range(TOTAL) if shard_of(shard_key(single, "q0"), TOTAL) != i)
    data["state"]["path"] = str(fleet.tmp_path / "stranger.db")
    fleet.forget_requests()
    settings = parse_settings(data)
    async with Monitor(settings, clock=fleet.clock, shard=Shard(stranger, TOTAL)) as monitor:
        await monitor.run_cycle()
        names = [pipeline.project.name for pipeline in monitor.pipelines]
        info = monitor.metrics.registry.get_sample_value(
            "dli_monitor_shard_info", {"shard": str(stranger), "total_shards": str(TOTAL)}
        )
    assert "p0" not in names
    assert fleet.worlds["p0"].requests == []
    assert info == 1.0


async def test_a_shard_that_owns_no_target_at_all_is_idle_healthy_and_ready(
    fleet: Fleet,
) -> None:
    data = fleet.config(0, "full")
    data["dli"] = data["dli"][:1]
    data["dli"][0]["queues"] = ["q0"]
    settings = parse_settings(data)
    stranger = next(
        i for i in range(TOTAL) if shard_of(shard_key(settings.projects[0], "q0"), TOTAL) != i
    )
    async with Monitor(settings, clock=fleet.clock, shard=Shard(stranger, TOTAL)) as monitor:
        report = await monitor.run_cycle()
        healthy, reason = monitor.health.healthy()
    assert report.results == () and report.ok
    assert healthy and monitor.health.ready
    assert reason.startswith("idle")
