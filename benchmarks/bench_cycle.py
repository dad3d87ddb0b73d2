"""Cycle benchmark: how long a poll cycle takes, and what it costs, for N jobs.

Runs the DLI simulator (AK/SK checking on) and a tiny webhook receiver in this process on
loopback sockets, builds a `Monitor` exactly as `dli-monitor run` does (temporary SQLite state
file, page size 100, no request budget) and measures, for each N:

1. the baseline cycle (first poll): wall time, requests, peak Python memory, max RSS;
2. a steady-state cycle with nothing changed (median of 3): wall time, requests;
3. a cycle in which K jobs change state: wall time, events, time until the receiver has all
   of them, how many it got;
4. the pure differ on the same N jobs (baseline and steady diff), in microseconds per job;
5. `Store.commit_poll` of the baseline snapshot into a fresh state file.

It prints figures and never asserts on them. Usage::

    python benchmarks/bench_cycle.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import platform
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from monitor.app import Monitor
from monitor.config import Settings, parse_settings
from monitor.diff import diff
from monitor.logs import configure as configure_logs
from monitor.models import Job
from monitor.simulator import World, make_app
from monitor.store import open_store

PROJECT = "0123456789abcdef0123456789abcdef"
ACCESS_KEY = "AKBENCH0000000000001"
SECRET_KEY = "bench-secret-key-not-real-0001"
QUEUES = ("etl", "adhoc", "reports", "ml")
PAGE_SIZE = 100
ACTIVE_SHARE = 0.02
CHANGE_SHARE = 0.01
MIN_CHANGES = 100
STEADY_RUNS = 3
"""Unchanged cycles run; the one with the median wall time is reported."""
PHASE_TIMEOUT_S = 240.0
"""No single phase (one cycle, one delivery wait) may run longer than this."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ServerClock:
    """Seconds the simulator spent inside its handlers (auth check, listing, JSON)."""

    seconds: float = 0.0

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Time one request from the gateway to the finished response object."""
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            self.seconds += time.perf_counter() - started


@dataclass
class Receiver:
    """A webhook endpoint that answers 200 and remembers which event ids it got."""

    expected: int = 0
    event_ids: set[str] = field(default_factory=set)
    posts: int = 0
    first_at: float | None = None
    """`time.perf_counter()` when the first POST since `expect` arrived."""
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        """Record one POST."""
        body: Any = await request.json()
        self.posts += 1
        if self.first_at is None:
            self.first_at = time.perf_counter()
        if isinstance(body, dict):
            self.event_ids.add(str(body.get("event_id", "")))
        if self.expected and len(self.event_ids) >= self.expected:
            self.done.set()
        return web.json_response({"ok": True})

    def expect(self, count: int) -> None:
        """Start counting afresh; `done` is set once `count` distinct events arrived."""
        self.expected = count
        self.event_ids.clear()
        self.posts = 0
        self.first_at = None
        self.done.clear()


@dataclass
class Row:
    """The figures of one N."""

    jobs: int
    active: int
    base_s: float = 0.0
    base_requests: int = 0
    base_server_s: float = 0.0
    peak_mb: float = 0.0
    rss_mb: float = 0.0
    steady_s: float = 0.0
    steady_requests: int = 0
    steady_server_s: float = 0.0
    changes: int = 0
    change_s: float = 0.0
    change_server_s: float = 0.0
    events: int = 0
    first_delivery_s: float = math.nan
    all_delivered_s: float = math.nan
    delivered: int = 0
    diff_base_us: float = 0.0
    diff_steady_us: float = 0.0
    commit_s: float = 0.0


def populate(world: World, jobs: int, active: int, seed: int = 7) -> list[str]:
    """Add `jobs` jobs over `QUEUES`, `active` of them running/starting; returns their ids."""
    rng = random.Random(seed)
    start = world.clock() - timedelta(seconds=jobs + 60)
    active_at = set(rng.sample(range(jobs), active))
    active_ids: list[str] = []
    for index in range(jobs):
        if index in active_at:
            state = "running" if index % 2 else "starting"
        else:
            state = "dead" if rng.random() < 0.15 else "success"
        job = world.add_job(
            queue=QUEUES[index % len(QUEUES)],
            name=f"job-{index:06d}",
            state=state,
            owner=f"user{index % 13}",
            created=start + timedelta(seconds=index),
        )
        if index in active_at:
            active_ids.append(job.id)
    return active_ids


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 on a free port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def monitor_config(endpoint: str, hook: str, state: Path) -> dict[str, Any]:
    """The config the monitor runs with: every queue, one webhook, no console, no server."""
    return {
        "dli": {
            "endpoint": endpoint,
            "project_id": PROJECT,
            "auth": {"type": "aksk", "access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
            "page_size": PAGE_SIZE,
            "request_timeout": "30s",
            "max_requests_per_minute": 0,
            "retry": {"attempts": 2, "backoff": [0]},
        },
        "queues": list(QUEUES),
        "poll": {"interval": "120s"},
        "state": {"path": str(state)},
        "server": {"enabled": False},
        "delivery": {"timeout": "10s", "batch_size": 100},
        "sinks": [{"name": "hook", "type": "webhook", "url": hook}],
    }


async def timed_cycle(monitor: Monitor) -> float:
    """Run one cycle (bounded by `PHASE_TIMEOUT_S`); returns its wall time."""
    started = time.perf_counter()
    async with asyncio.timeout(PHASE_TIMEOUT_S):
        await monitor.run_cycle()
    return time.perf_counter() - started


def rss_mb() -> float:
    """The process's peak resident set size so far, in MiB (ru_maxrss is KiB on Linux)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 1024 / 1024


async def bench_one(jobs: int, workdir: Path) -> Row:
    """All measurements for one N."""
    changes = max(MIN_CHANGES, round(jobs * CHANGE_SHARE))
    active = max(math.ceil(jobs * ACTIVE_SHARE), changes)
    row = Row(jobs=jobs, active=active, changes=changes)
    world = World()
    active_ids = populate(world, jobs, active)
    clock = ServerClock()
    sim = make_app(world, project_id=PROJECT, auth="aksk", credentials={ACCESS_KEY: SECRET_KEY})
    sim.middlewares.insert(0, clock.middleware)
    receiver = Receiver()
    hook_app = web.Application()
    hook_app.router.add_post("/hook", receiver.handle)

    async with serving(sim) as endpoint, serving(hook_app) as hook_base:
        run = Run(world, clock, receiver, endpoint, f"{hook_base}/hook", workdir, row)
        await run.measure_memory()
        async with Monitor(run.settings("state.db")) as monitor:
            await run.measure_quiet_cycles(monitor)
            await run.measure_changes(monitor, active_ids[:changes])
            snapshots = [await monitor.cycle.snapshot(queue) or {} for queue in QUEUES]

    # 4. the pure differ, per target, on the snapshots the monitor holds
    now = datetime.now(UTC)
    row.diff_base_us = best_of(3, lambda: run_diffs(None, snapshots, now)) / jobs * 1e6
    row.diff_steady_us = best_of(3, lambda: run_diffs(snapshots, snapshots, now)) / jobs * 1e6

    # 5. committing the baseline snapshot into a fresh file
    row.commit_s = await time_commit(snapshots, workdir / "commit.db", now)
    return row


@dataclass
class Run:
    """The servers of one N and the row its measurements go into."""

    world: World
    clock: ServerClock
    receiver: Receiver
    endpoint: str
    hook: str
    workdir: Path
    row: Row

    def settings(self, state_file: str) -> Settings:
        """Monitor settings with their own state file in the work directory."""
        return parse_settings(monitor_config(self.endpoint, self.hook, self.workdir / state_file))

    async def measure_memory(self) -> None:
        """1. Peak Python memory of a baseline, on its own state file (traced, so untimed)."""
        gc.collect()
        tracemalloc.start()
        try:
            async with Monitor(self.settings("memory.db")) as monitor:
                await timed_cycle(monitor)
                self.row.peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        finally:
            tracemalloc.stop()
        self.row.rss_mb = rss_mb()

    async def measure_quiet_cycles(self, monitor: Monitor) -> None:
        """1. The timed baseline, then 2. cycles in which nothing changed (the median one)."""
        row, requests = self.row, self.world.requests
        before, self.clock.seconds = len(requests), 0.0
        row.base_s = await timed_cycle(monitor)
        row.base_requests, row.base_server_s = len(requests) - before, self.clock.seconds

        samples: list[tuple[float, float, int]] = []
        for _ in range(STEADY_RUNS):
            before, self.clock.seconds = len(requests), 0.0
            wall = await timed_cycle(monitor)
            samples.append((wall, self.clock.seconds, len(requests) - before))
        row.steady_s, row.steady_server_s, row.steady_requests = statistics.median_low(samples)

    async def measure_changes(self, monitor: Monitor, job_ids: Sequence[str]) -> None:
        """3. Move these jobs on (starting → running, running → success) and time one cycle."""
        row, receiver = self.row, self.receiver
        for job_id in job_ids:
            after = "success" if self.world.get(job_id).state == "running" else "running"
            self.world.set_state(job_id, after)
        receiver.expect(len(job_ids))
        self.clock.seconds = 0.0
        started = time.perf_counter()
        async with asyncio.timeout(PHASE_TIMEOUT_S):
            report = await monitor.run_cycle()
        row.change_s = time.perf_counter() - started
        row.change_server_s = self.clock.seconds
        row.events = report.events
        async with asyncio.timeout(PHASE_TIMEOUT_S):  # what the cycle's budget left undelivered
            while not receiver.done.is_set() and (await monitor.deliver()).delivered:
                pass
        if receiver.done.is_set():
            row.all_delivered_s = time.perf_counter() - started
        if receiver.first_at is not None:
            row.first_delivery_s = receiver.first_at - started
        row.delivered = len(receiver.event_ids)


def run_diffs(
    previous: Sequence[dict[str, Job]] | None, current: Sequence[dict[str, Job]], now: datetime
) -> None:
    """Diff every target once."""
    for index, (queue, jobs) in enumerate(zip(QUEUES, current, strict=True)):
        diff(previous[index] if previous is not None else None, jobs, target=queue, now=now)


def best_of(repeat: int, func: Callable[[], None]) -> float:
    """The fastest of `repeat` runs, in seconds."""
    best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - started)
    return best


async def time_commit(snapshots: Sequence[dict[str, Job]], path: Path, now: datetime) -> float:
    """Seconds spent in `commit_poll` writing every target's baseline into a new state file."""
    store = await open_store(path)
    try:
        total = 0.0
        for queue, jobs in zip(QUEUES, snapshots, strict=True):
            result = diff(None, jobs, target=queue, now=now)
            started = time.perf_counter()
            await store.commit_poll(
                queue,
                upserts=result.upserts,
                removals=result.removals,
                events=result.events,
                sinks=("hook",),
                now=now,
            )
            total += time.perf_counter() - started
        return total
    finally:
        await store.close()


def print_machine(sizes: Sequence[int]) -> None:
    """Python, platform, CPUs and library versions: what the figures depend on."""
    print(f"python {platform.python_version()} ({platform.python_implementation()})")
    print(f"platform {platform.platform()}, cpus {os.cpu_count()}")
    print(f"aiohttp {aiohttp.__version__}, sqlite {sqlite3.sqlite_version}")
    print(
        f"N = {', '.join(f'{n:,}' for n in sizes)}; queues {len(QUEUES)}; page {PAGE_SIZE};"
        f" active max(2% N, K); K = max(1% N, {MIN_CHANGES}); AK/SK on; state file in"
        f" {tempfile.gettempdir()}"
    )
    print()


def print_rows(rows: Sequence[Row]) -> None:
    """Three tables: the baseline, the later cycles, and the parts measured alone."""
    print("wall seconds; sim_s = inside the simulator's handlers, mon_s = wall - sim_s")
    print()
    print("1. baseline cycle (first poll)")
    print(
        f"{'N':>7} {'active':>6} {'requests':>8} {'wall_s':>7} {'sim_s':>6} {'mon_s':>6}"
        f" {'mon_us/job':>10} {'py_peak_MB':>10} {'maxrss_MB':>9}"
    )
    for r in rows:
        mon = r.base_s - r.base_server_s
        print(
            f"{r.jobs:>7,} {r.active:>6} {r.base_requests:>8} {r.base_s:>7.2f}"
            f" {r.base_server_s:>6.2f} {mon:>6.2f} {mon / r.jobs * 1e6:>10.0f}"
            f" {r.peak_mb:>10.1f} {r.rss_mb:>9.0f}"
        )
    print()
    print(
        "2. steady cycle (unchanged, median of 3)      3. K jobs change state (all_s: cycle start"
        " until the receiver has all K)"
    )
    print(
        f"{'N':>7} {'requests':>8} {'wall_s':>7} {'sim_s':>6} {'mon_s':>6}   {'K':>5}"
        f" {'wall_s':>7} {'sim_s':>6} {'events':>6} {'first_s':>7} {'all_s':>6}"
        f" {'delivered':>9}"
    )
    for r in rows:
        print(
            f"{r.jobs:>7,} {r.steady_requests:>8} {r.steady_s:>7.2f} {r.steady_server_s:>6.2f}"
            f" {r.steady_s - r.steady_server_s:>6.2f}   {r.changes:>5} {r.change_s:>7.2f}"
            f" {r.change_server_s:>6.2f} {r.events:>6} {r.first_delivery_s:>7.2f}"
            f" {r.all_delivered_s:>6.2f} {r.delivered:>9}"
        )
    print()
    print("4./5. parts alone (differ: best of 3, all targets; commit: baseline, fresh file)")
    print(
        f"{'N':>7} {'diff_base_us/job':>16} {'diff_steady_us/job':>18} {'commit_s':>8}"
        f" {'commit_us/job':>13}"
    )
    for r in rows:
        print(
            f"{r.jobs:>7,} {r.diff_base_us:>16.1f} {r.diff_steady_us:>18.1f}"
            f" {r.commit_s:>8.3f} {r.commit_s / r.jobs * 1e6:>13.1f}"
        )


async def main(sizes: Sequence[int]) -> None:
    """Benchmark each N in turn, then print the tables."""
    configure_logs("json", "error", stream=sys.stderr)
    print_machine(sizes)
    rows: list[Row] = []
    for jobs in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-cycle-") as tmp:
            started = time.perf_counter()
            rows.append(await bench_one(jobs, Path(tmp)))
            print(f"  N={jobs:,} done in {time.perf_counter() - started:.1f} s", flush=True)
        gc.collect()
    print()
    print_rows(rows)


def parse_args(argv: Sequence[str] | None = None) -> list[int]:
    """The list of N to run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="N = 1,000 and 5,000 only")
    args = parser.parse_args(argv)
    return [1_000, 5_000] if args.quick else [1_000, 10_000, 50_000]


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
