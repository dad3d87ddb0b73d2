"""Capacity benchmark: how many projects of size M one daemon process (one pod) holds.

``python -m benchmarks.capacity [--projects 1,2,4,8] [--cycles N] [--interval S] [--seed N]
[--job-series-ttl S] [--quick] [--out FILE]``

For each K of ``--projects`` it starts, on 127.0.0.1 only: K simulator processes
(`benchmarks.scale_sim`, scenario M of `scale_support.SCENARIOS`, seeds ``seed + 101·i``, so
every project has its own jobs and ids), one daemon (``python -m monitor run``, JSON logs, a
temporary SQLite state file, ``poll.mode: incremental``, one ``webhook`` sink) whose ``dli:``
is the list form with K projects ``p0..p{K-1}`` (each ``max_requests_per_minute: 0``, every
queue), and, in this process, the webhook receiver. After every project's silent baseline the
simulators run their steady activity for ``--cycles`` ticks (no burst), then pause for 3 drain
ticks; everything is then stopped. Tick k is the k-th "cycle completed" line of every project
(the daemon runs one cycle job per project, all on the same interval and started together).

Daemon CPU per tick is measured from /proc/<pid>/stat (utime + stime) at the arrival of the
tick's last cycle line, minus the same at the previous tick's: the whole process, whatever ran
(cycles, outbox drain, the loop). The lines' own ``cpu_s`` are not summed: each is the process
CPU time during that project's cycle, and the K cycles of a tick overlap on one event loop, so
their sum counts the shared time up to K times (it is kept in the JSON as an upper bound). The
simulators' and the harness's CPU are read the same way over the active ticks. Prints a table,
the drift and an extrapolation (`capacity_print`), writes JSON (``--out``), never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks import capacity_print
from benchmarks import capacity_report as report
from benchmarks import scale_procs as procs
from benchmarks import scale_support as sup

PAGE_SIZE = 100
DRAIN_CYCLES = 3
SEED_STRIDE = 101
SCENARIO = sup.SCENARIOS["M"]


@dataclass
class Plan:
    """One run: K projects of scenario M polled by one daemon."""

    projects: int
    cycles: int
    interval: float
    seed: int
    job_series_ttl: float | None = None
    """`metrics.job_series_ttl` for the daemon (None: its default); it sets how long memory
    keeps ended jobs, so a short run can reach the steady state of a shorter window."""
    scenario: sup.Scenario = SCENARIO

    def names(self) -> list[str]:
        """The projects' names in the daemon's config."""
        return [f"p{index}" for index in range(self.projects)]

    def budget_s(self) -> float:
        """The hard limit of the whole run, children included."""
        return (
            300 + 30 * self.projects + (self.cycles + DRAIN_CYCLES + 2) * (3 * self.interval + 30)
        )


@dataclass
class Readings:
    """CPU seconds of every process at the start and the end of the active ticks."""

    at_go: dict[str, float] = field(default_factory=dict)
    at_end: dict[str, float] = field(default_factory=dict)
    window: tuple[float, float] = (0.0, 0.0)
    hwm_mb: float | None = None
    rss_mb: float | None = None


class Daemon(procs.Daemon):
    """The daemon, with its resident set size noted at each cycle line's arrival (`_rss`)."""

    def observe(self, line: dict[str, Any]) -> None:
        """As `scale_procs.Daemon.observe`, plus VmRSS in MiB on cycle lines."""
        super().observe(line)
        if line.get("event") == "cycle completed":
            line["_rss"] = report.proc_rss_mb(self.proc.pid)


def daemon_config(plan: Plan, hellos: list[dict[str, Any]], hook: str, state: Path) -> dict:
    """The daemon's config: a `dli:` list of K projects, unlimited requests, one webhook."""
    projects = [
        {
            "name": name,
            "endpoint": f"http://127.0.0.1:{hello['port']}",
            "region": "local",
            "project_id": hello["project_id"],
            "auth": {"type": "none"},
            "page_size": PAGE_SIZE,
            "request_timeout": "30s",
            "max_requests_per_minute": 0,
            "queues": sup.queue_names(plan.scenario.queues),
        }
        for name, hello in zip(plan.names(), hellos, strict=True)
    ]
    config: dict[str, Any] = {
        "dli": projects,
        "poll": {"interval": plan.interval, "mode": "incremental"},
        "state": {"path": str(state)},
        "server": {"enabled": False},
        "rules": {"stuck_starting_after": 0, "stuck_recovering_after": 0, "overdue_factor": 0},
        "sinks": [{"name": "bench", "type": "webhook", "url": hook}],
    }
    if plan.job_series_ttl is not None:
        config["metrics"] = {"job_series_ttl": plan.job_series_ttl}
    return config


async def start_sims(plan: Plan, tmp: Path, stack: AsyncExitStack) -> list[procs.Sim]:
    """K simulator processes, each with its own seed and files; waits for every port."""
    sims = []
    for index in range(plan.projects):
        sim = await procs.Sim.spawn(
            f"simulator#{index}", "-m", "benchmarks.scale_sim", "--scenario", plan.scenario.name,
            "--seed", str(plan.seed + SEED_STRIDE * index), "--interval", str(plan.interval),
            "--truth", str(tmp / f"truth{index}.jsonl"),
            "--requests", str(tmp / f"requests{index}.jsonl"),
            "--stats", str(tmp / f"stats{index}.json"), "--max-seconds", str(plan.budget_s()),
        )  # fmt: skip
        stack.push_async_callback(sim.finish)
        sims.append(sim)
    for sim in sims:
        await sim.wait_for(lambda s=sim: any("port" in line for line in s.lines), 300, "port")
    return sims


def hello_of(sim: procs.Sim) -> dict[str, Any]:
    """The simulator's first line: its port and project id."""
    return next(line for line in sim.lines if "port" in line)


async def wait_ticks(daemon: procs.Daemon, names: list[str], count: int, timeout: float) -> None:
    """Wait until every project has logged `count` cycle lines."""

    def done() -> bool:
        """True once every project has logged `count` cycle lines."""
        seen = [line.get("project") for line in daemon.cycles]
        return all(seen.count(name) >= count for name in names)

    await daemon.wait_for(done, timeout, f"tick {count}")


def cpu_of(sims: list[procs.Sim], daemon: procs.Daemon) -> dict[str, float]:
    """CPU seconds now: the daemon, each simulator, and this process (the receiver)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    readings = {"harness": usage.ru_utime + usage.ru_stime}
    readings["daemon"] = sup.proc_cpu_s(daemon.proc.pid) or 0.0
    for index, sim in enumerate(sims):
        readings[f"sim{index}"] = sup.proc_cpu_s(sim.proc.pid) or 0.0
    return readings


async def drive(
    plan: Plan, sims: list[procs.Sim], daemon: procs.Daemon, receiver: sup.Receiver
) -> Readings:
    """Baseline, active ticks, pause, drain; CPU readings around the active ticks, peak RSS."""
    names, step = plan.names(), 3 * plan.interval + 60
    readings = Readings()
    await wait_ticks(daemon, names, 1, timeout=600)
    await asyncio.gather(*(sim.command("go") for sim in sims))
    readings.at_go, start = cpu_of(sims, daemon), time.time()
    await wait_ticks(daemon, names, 1 + plan.cycles, step * plan.cycles)
    readings.at_end, readings.window = cpu_of(sims, daemon), (start, time.time())
    await asyncio.gather(*(sim.command("pause") for sim in sims))
    await wait_ticks(daemon, names, 1 + plan.cycles + DRAIN_CYCLES, step * DRAIN_CYCLES)
    await receiver.settle(1.0, plan.interval + 5)
    readings.hwm_mb = sup.proc_hwm_mb(daemon.proc.pid)
    readings.rss_mb = report.proc_rss_mb(daemon.proc.pid)
    return readings


async def run_one(plan: Plan) -> dict[str, Any]:
    """Simulators, daemon and receiver for one K; the analysed result."""
    receiver = sup.Receiver()
    with tempfile.TemporaryDirectory(prefix=f"capacity-{plan.projects}-") as name:
        tmp = Path(name)
        async with AsyncExitStack() as stack:
            hook = await stack.enter_async_context(receiver.serving())
            sims = await start_sims(plan, tmp, stack)
            hellos = [hello_of(sim) for sim in sims]
            config = daemon_config(plan, hellos, hook, tmp / "state.db")
            (tmp / "monitor.yaml").write_text(yaml.safe_dump(config))
            daemon = await Daemon.spawn(
                "daemon", "-m", "monitor", "--log-format", "json", "run",
                "--config", str(tmp / "monitor.yaml"),
            )  # fmt: skip
            stack.push_async_callback(daemon.stop)
            readings = await drive(plan, sims, daemon, receiver)
        truths = [sup.Truth.load(tmp / f"truth{i}.jsonl") for i in range(plan.projects)]
        run = report.RunData(
            plan.names(), plan.cycles, plan.interval, truths, daemon, receiver, plan.job_series_ttl
        )
        return report.analyse(run, readings)


async def run_all(plans: list[Plan]) -> list[dict[str, Any]]:
    """Every run in turn, each bounded by its budget; a failed run is recorded, not raised."""
    procs.stop_on_sigterm()
    results = []
    for plan in plans:
        entry: dict[str, Any] = {"projects": plan.projects, "interval": plan.interval}
        entry["active_cycles"] = plan.cycles
        status = await procs.bounded_run(entry, run_one(plan), plan.budget_s())
        print(f"K={plan.projects}: {entry['wall_s']} s, {status}", flush=True)
        results.append(entry)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; --quick means K = 1,2 with 4 active ticks."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--projects", help="comma-separated K values (default 1,2,4; quick: 1,2)")
    parser.add_argument("--cycles", type=int, help="active ticks per run (default 20; quick: 4)")
    parser.add_argument("--interval", type=float, default=2.0, help="poll interval in seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--job-series-ttl",
        type=float,
        help="the daemon's metrics.job_series_ttl in seconds: how long memory keeps ended jobs"
        " (default: the daemon's, 1 h)",
    )
    parser.add_argument("--quick", action="store_true", help="a short run: K = 1,2, 4 ticks")
    parser.add_argument("--out", default=str(sup.REPO / "benchmarks" / "results" / "capacity.json"))
    args = parser.parse_args(argv)
    try:
        args.projects = [
            int(k) for k in (args.projects or ("1,2" if args.quick else "1,2,4")).split(",")
        ]
    except ValueError:
        parser.error("--projects takes comma-separated whole numbers")
    if any(k < 1 for k in args.projects):
        parser.error("--projects values must be at least 1")
    args.cycles = args.cycles or (4 if args.quick else 20)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every K, print the table and the extrapolation, write the JSON; exit 1 on a failure."""
    args = parse_args(argv)
    plans = [
        Plan(k, args.cycles, args.interval, args.seed, args.job_series_ttl) for k in args.projects
    ]
    try:
        results = asyncio.run(run_all(plans))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; the simulators and the daemon were stopped", file=sys.stderr)
        return 130
    fit = capacity_print.extrapolate(results, args.interval)
    capacity_print.print_report(results, fit, args.interval)
    meta = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "argv": sys.argv[1:] if argv is None else argv,
        "page_size": PAGE_SIZE,
        "seed": args.seed,
        "seed_stride": SEED_STRIDE,
        "drain_cycles": DRAIN_CYCLES,
        "scenario": vars(SCENARIO),
        "cpu_from": "/proc utime+stime of the daemon between ticks",
        "job_series_ttl": args.job_series_ttl,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "runs": results, "fit": fit}, indent=1, default=str))
    print(f"wrote {out}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
