"""A hot standby taking over, with real processes: a leader killed or frozen mid-delivery.

The simulator runs as its own process (`benchmarks.scale_sim`, scenario M: 238 running jobs;
each `burst` command kills 100 of them at once and writes their ids to the ground truth), two
daemons (`python -m monitor run`) share one PostgreSQL database with a 1.5 s lease and poll
every second, and one webhook receiver here records every POST with its `event_id` and the
sending replica (`X-DLI-Monitor-Instance`). It answers each POST after 20 ms, so that 100
deliveries take a few seconds and the leader can be hit in the middle of them.

- SIGKILL: the standby leads within 2 x TTL + one interval; every change reaches the receiver
  once after de-duplication by `event_id`, and at most the one send in flight is repeated.
- SIGSTOP: the standby takes over and delivers; after SIGCONT the old leader neither commits
  nor delivers (nothing from it reaches the receiver any more, its log says it lost the lease,
  and it completes no cycle), and it serves /readyz as a standby.

The measured takeover times are printed (run with `-s` to see them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from benchmarks import scale_procs as procs
from monitor.sinks.webhook import INSTANCE_HEADER
from tests.fakes.receiver import Receiver
from tests.pg_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TTL_S = 1.5
INTERVAL_S = 1.0
TAKEOVER_LIMIT_S = 2 * TTL_S + INTERVAL_S
REPLY_DELAY_S = 0.02
BURST = 100


class SlowReceiver(Receiver):
    """The test receiver, answering each POST `REPLY_DELAY_S` after recording it."""

    async def _handle(self, request: web.Request) -> web.Response:
        response = await super()._handle(request)
        await asyncio.sleep(REPLY_DELAY_S)
        return response

    def senders(self, since: int = 0) -> list[str]:
        """The instance header of every POST from index `since` on."""
        return [r.headers.get(INSTANCE_HEADER, "") for r in self.received[since:]]

    def dead_jobs(self) -> set[str]:
        """The job ids of the `dead` transitions received."""
        return {
            p["job"]["id"]
            for p in self.payloads()
            if isinstance(p, dict) and p.get("to_state") == "dead"
        }


class Replica(procs.Daemon):
    """A daemon that notes when its leadership lines arrived (harness monotonic time)."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.port = 0
        """Where it serves its probes (set after `spawn`)."""
        self.noted: dict[str, float] = {}
        super().__init__(name, proc)

    def observe(self, line: dict[str, Any]) -> None:
        """Note the first arrival of each leadership line, then count it like the base does."""
        event = str(line.get("event"))
        if event.startswith(("leadership", "leader-only")):
            self.noted.setdefault(event, time.monotonic())
        super().observe(line)

    def said(self, event: str) -> bool:
        """Whether it printed a line with this `event` text."""
        return self.events[event] > 0

    async def readyz(self) -> dict[str, Any]:
        """Its /readyz body."""
        url = f"http://127.0.0.1:{self.port}/readyz"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            body: dict[str, Any] = json.loads(await response.text())
            return body


@dataclass
class Cluster:
    """The simulator, the receiver, two replicas and where the simulator writes its truth."""

    sim: procs.Sim
    receiver: SlowReceiver
    replicas: list[Replica]
    truth: Path

    async def elect(self) -> tuple[Replica, Replica]:
        """Wait until one replica leads and has polled twice; (leader, standby)."""

        def leading() -> list[Replica]:
            return [r for r in self.replicas if r.said("leadership acquired")]

        await wait_until(lambda: len(leading()) == 1, 60, "a leader")
        leader = leading()[0]
        standby = next(r for r in self.replicas if r is not leader)
        await leader.wait_cycles(2, timeout=120)
        assert not leading()[1:] and not standby.cycles
        return leader, standby

    async def burst(self) -> int:
        """Kill up to 100 running jobs in the simulator; the number of POSTs so far."""
        await self.sim.command("burst")
        return len(self.receiver.received)

    def burst_jobs(self) -> set[str]:
        """Every job the simulator's bursts killed, from its ground truth."""
        lines = [json.loads(text) for text in self.truth.read_text().splitlines() if text]
        return {line["id"] for line in lines if line.get("tag") == "burst"}

    async def delivered(self, jobs: set[str], timeout: float = 60) -> None:
        """Wait until the receiver has a `dead` transition for each of `jobs`."""
        await wait_until(lambda: jobs <= self.receiver.dead_jobs(), timeout, "every change")


async def wait_until(test: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (really) until `test()` holds; AssertionError naming `what` after `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                if test():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout:.0f} s") from None


def daemon_config(endpoint: str, project: str, hook: str, dsn: str, port: int) -> dict[str, Any]:
    """A replica's config: every queue, incremental, the shared database, its own port."""
    return {
        "dli": {
            "endpoint": endpoint,
            "project_id": project,
            "auth": {"type": "none"},
            "page_size": 100,
            "request_timeout": "10s",
            "max_requests_per_minute": 0,
        },
        "queues": "*",
        "poll": {"interval": INTERVAL_S, "mode": "incremental"},
        "state": {"url": dsn, "lease_ttl": TTL_S},
        "server": {"enabled": True, "listen": f"127.0.0.1:{port}"},
        "delivery": {"backoff": [0.5, 1.0], "timeout": "5s"},
        "shutdown_timeout": "5s",
        "rules": {"stuck_starting_after": 0, "stuck_recovering_after": 0, "overdue_factor": 0},
        "sinks": [{"name": "hook", "type": "webhook", "url": hook}],
    }


@asynccontextmanager
async def cluster(tmp: Path, dsn: str) -> AsyncIterator[Cluster]:
    """Start everything; at the end thaw and stop the replicas, then the simulator."""
    async with AsyncExitStack() as stack:
        receiver = await stack.enter_async_context(SlowReceiver())
        sim = await procs.Sim.spawn(
            "simulator", "-m", "benchmarks.scale_sim", "--scenario", "M", "--seed", "11",
            "--interval", str(INTERVAL_S), "--truth", str(tmp / "truth.jsonl"),
            "--requests", str(tmp / "requests.jsonl"), "--stats", str(tmp / "stats.json"),
            "--max-seconds", "600",
        )  # fmt: skip
        stack.push_async_callback(sim.finish)
        await sim.wait_for(lambda: any("port" in line for line in sim.lines), 120, "port")
        hello = next(line for line in sim.lines if "port" in line)
        endpoint = f"http://127.0.0.1:{hello['port']}"
        replicas: list[Replica] = []
        for name in ("a", "b"):
            port = free_port()
            config = daemon_config(endpoint, hello["project_id"], receiver.url, dsn, port)
            path = tmp / f"{name}.yaml"
            path.write_text(yaml.safe_dump(config))
            replica = await Replica.spawn(
                name, "-m", "monitor", "--log-format", "json", "run", "--config", str(path)
            )
            replica.port = port
            replicas.append(replica)
            stack.push_async_callback(_stop, replica)
        yield Cluster(sim, receiver, replicas, tmp / "truth.jsonl")


async def _stop(replica: Replica) -> None:
    """Thaw a frozen replica (a stopped process ignores SIGTERM), then stop it."""
    if replica.proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            replica.proc.send_signal(signal.SIGCONT)
    await replica.stop(grace=15)


async def test_a_killed_leader_is_replaced_and_every_change_arrives_once(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with cluster(tmp_path, pg_dsn) as c:
        leader, standby = await c.elect()
        await c.burst()
        await c.delivered(c.burst_jobs())
        sent = await c.burst()
        await c.receiver.wait_for_requests(sent + 30, timeout=60)
        killed_at = time.monotonic()
        leader.proc.kill()  # SIGKILL in the middle of delivering the second burst
        await standby.wait_for(lambda: standby.said("leadership acquired"), 30, "takeover")
        takeover = standby.noted["leadership acquired"] - killed_at
        changed = c.burst_jobs()
        await c.delivered(changed)
        await standby.wait_cycles(2, timeout=30)
        first_post = _first_post(c.receiver, standby)
        role = await standby.readyz()
        ids = c.receiver.event_ids()
        warnings = list(standby.warnings)
    print(f"\nSIGKILL: standby led after {takeover:.2f} s (limit {TAKEOVER_LIMIT_S:.1f} s)")
    print(f"SIGKILL: {len(ids)} POSTs, {len(set(ids))} events; new leader's first #{first_post}")
    assert takeover <= TAKEOVER_LIMIT_S
    assert len(changed) == 2 * BURST
    assert c.receiver.dead_jobs() == changed
    assert len(set(ids)) == 2 * BURST  # nothing else was reported
    assert len(ids) - len(set(ids)) <= 1  # at most the one send in flight is repeated
    assert role["role"] == "leader" and role["instance"] in set(c.receiver.senders())
    assert all(w.startswith("lease call") for w in warnings), warnings


async def test_a_frozen_leader_is_replaced_and_never_acts_after_it_thaws(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with cluster(tmp_path, pg_dsn) as c:
        leader, standby = await c.elect()
        old = (await leader.readyz())["instance"]
        sent = await c.burst()
        await c.receiver.wait_for_requests(sent + 20, timeout=60)
        leader.proc.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        await asyncio.sleep(0.3)  # what the frozen leader had already sent has arrived
        frozen = len(c.receiver.received)
        await standby.wait_for(lambda: standby.said("leadership acquired"), 30, "takeover")
        takeover = standby.noted["leadership acquired"] - stopped_at
        changed = c.burst_jobs()
        await c.delivered(changed)
        cycles = len(leader.cycles)
        leader.proc.send_signal(signal.SIGCONT)
        await leader.wait_for(lambda: leader.said("leadership lost"), 30, "the lost leadership")
        await asyncio.sleep(3 * INTERVAL_S)  # time to act, if it wrongly would
        after = c.receiver.senders(frozen)
        thawed_cycles = len(leader.cycles)  # before the end: then b stops and a may lead again
        role = await leader.readyz()
        new = (await standby.readyz())["instance"]
    print(f"\nSIGSTOP: standby led after {takeover:.2f} s (limit {TAKEOVER_LIMIT_S:.1f} s)")
    assert takeover <= TAKEOVER_LIMIT_S
    assert len(changed) == BURST and c.receiver.dead_jobs() == changed
    assert old not in after and set(after) == {new}
    assert thawed_cycles == cycles  # it completed no cycle after it thawed
    assert role["role"] == "standby" and role["ready"] is True
    lost = [line for line in leader.lines if line.get("event") == "leadership lost"]
    assert lost and lost[0].get("reason")


def _first_post(receiver: SlowReceiver, replica: Replica) -> int:
    """The index of the first POST the replica sent (-1: none)."""
    instance = next(
        (line["holder"] for line in replica.lines if line.get("event") == "leadership acquired"),
        None,
    )
    senders = receiver.senders()
    return senders.index(instance) if instance in senders else -1
