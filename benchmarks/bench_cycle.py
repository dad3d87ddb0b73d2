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

This file takes the measurements; the workload and the in-process servers are in
`bench_cycle_rig`, the printed tables in `bench_cycle_report`. It prints figures and never
asserts on them. Usage::

    python benchmarks/bench_cycle.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repo root

from benchmarks.bench_cycle_report import Row, print_machine, print_rows
from benchmarks.bench_cycle_rig import (
    ACCESS_KEY,
    ACTIVE_SHARE,
    CHANGE_SHARE,
    MIN_CHANGES,
    PROJECT,
    QUEUES,
    SECRET_KEY,
    Receiver,
    ServerClock,
    monitor_config,
    populate,
    serving,
)
from monitor.app import Monitor
from monitor.config import Settings, parse_settings
from monitor.diff import diff
from monitor.logs import configure as configure_logs
from monitor.models import Job
from monitor.simulator import World, make_app
from monitor.store import open_store

STEADY_RUNS = 3
"""Unchanged cycles run; the one with the median wall time is reported."""
PHASE_TIMEOUT_S = 240.0
"""No single phase (one cycle, one delivery wait) may run longer than this."""


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
