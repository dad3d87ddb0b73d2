"""Scale benchmark: what a poll cycle of the real daemon costs as the project grows, per poll mode.

``python -m benchmarks.scale [--scenarios S,M,L] [--modes incremental,full] [--cycles N]
[--interval S] [--seed N] [--quick] [--out FILE] [--mode-key auto|always|never]``

Per scenario and mode it starts, on 127.0.0.1 only: the simulator process (`scale_sim`, a fresh
world from the same seed), the daemon (``python -m monitor run``, JSON logs, a temporary state
file, ``max_requests_per_minute: 0``, one ``webhook`` sink; ``poll.mode`` is written only when
the daemon accepts it, or as ``--mode-key`` says) and, in this process, the webhook receiver.
After the silent baseline cycle the simulator's activity runs for ``--cycles`` cycles (the burst
comes after the middle one), then pauses for 3 drain cycles; both children are then stopped.
Prints tables, writes JSON (``--out``), never asserts. Scenarios: `scale_support.SCENARIOS`
(S: 5 queues, 2,000 history jobs, ~50 active; M: 50, 20,000, ~300; L: 50, 100,000, 500; a few
active jobs were created days ago). Full mode at L lists ~1,000 pages a cycle, so it runs
with a longer interval and fewer cycles (the output says so).

The per-cycle rows, the lower bound of requests and the matching of events with the ground
truth are `scale_analysis`'s (its docstring defines them); the tables are `scale_report`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks import scale_procs as procs
from benchmarks import scale_report
from benchmarks import scale_support as sup
from benchmarks.scale_analysis import analyse

PAGE_SIZE = 100
DRAIN_CYCLES = 3


@dataclass
class Plan:
    """One run: a scenario in one mode, its poll interval and how many active cycles it measures."""

    scenario: sup.Scenario
    mode: str
    interval: float
    cycles: int
    mode_key: bool
    seed: int
    note: str = ""

    def budget_s(self) -> float:
        """The hard limit of the whole run, children included."""
        return 300 + (self.cycles + DRAIN_CYCLES + 2) * (3 * self.interval + 30)


def daemon_config(
    plan: Plan, endpoint: str, project: str, hook: str, state: Path
) -> dict[str, Any]:
    """The daemon's config: every queue, unlimited requests, one webhook, silent rules."""
    poll: dict[str, Any] = {"interval": plan.interval}
    if plan.mode_key:
        poll["mode"] = plan.mode
    return {
        "dli": {
            "endpoint": endpoint,
            "project_id": project,
            "auth": {"type": "none"},
            "page_size": PAGE_SIZE,
            "request_timeout": "30s",
            "max_requests_per_minute": 0,
        },
        "queues": sup.queue_names(plan.scenario.queues),
        "poll": poll,
        "state": {"path": str(state)},
        "server": {"enabled": False},
        "rules": {"stuck_starting_after": 0, "stuck_recovering_after": 0, "overdue_factor": 0},
        "sinks": [{"name": "bench", "type": "webhook", "url": hook}],
    }


def mode_key_supported() -> bool:
    """True when the daemon accepts `poll.mode` (check-config exits 0 with it set)."""
    plan = Plan(sup.SCENARIOS["S"], "incremental", 2.0, 1, mode_key=True, seed=0)
    with tempfile.TemporaryDirectory(prefix="scale-probe-") as tmp:
        path = Path(tmp) / "probe.yaml"
        hook = "http://127.0.0.1:9/hook"
        config = daemon_config(plan, "http://127.0.0.1:9", "0" * 32, hook, Path(tmp) / "s.db")
        path.write_text(yaml.safe_dump(config))
        command = [sys.executable, "-m", "monitor", "check-config", "--config", str(path)]
        done = subprocess.run(command, cwd=sup.REPO, capture_output=True, timeout=60, check=False)
        return done.returncode == 0


async def drive(
    plan: Plan, sim: procs.Sim, daemon: procs.Daemon, receiver: sup.Receiver
) -> float | None:
    """Baseline, active cycles with one burst, pause, drain; returns the daemon's peak RSS."""
    step = 3 * plan.interval + 60
    await daemon.wait_cycles(1, timeout=600)
    await sim.command("go")
    burst_after = max(1, plan.cycles // 2)
    for k in range(1, plan.cycles + 1):
        await daemon.wait_cycles(1 + k, step)
        if k == burst_after:
            await sim.command("burst")
    await sim.command("pause")
    await daemon.wait_cycles(1 + plan.cycles + DRAIN_CYCLES, step)
    await receiver.settle(1.0, plan.interval + 5)
    return sup.proc_hwm_mb(daemon.proc.pid)


async def run_one(plan: Plan) -> dict[str, Any]:
    """Simulator, daemon and receiver for one scenario and mode; the analysed result."""
    receiver = sup.Receiver()
    with tempfile.TemporaryDirectory(prefix=f"scale-{plan.scenario.name}-") as name:
        tmp = Path(name)
        async with AsyncExitStack() as stack:
            hook = await stack.enter_async_context(receiver.serving())
            sim = await procs.Sim.spawn(
                "simulator", "-m", "benchmarks.scale_sim", "--scenario", plan.scenario.name,
                "--seed", str(plan.seed), "--interval", str(plan.interval),
                "--truth", str(tmp / "truth.jsonl"), "--requests", str(tmp / "requests.jsonl"),
                "--stats", str(tmp / "stats.json"), "--max-seconds", str(plan.budget_s()),
            )  # fmt: skip
            stack.push_async_callback(sim.finish)
            await sim.wait_for(lambda: any("port" in line for line in sim.lines), 300, "port")
            hello = next(line for line in sim.lines if "port" in line)
            endpoint = f"http://127.0.0.1:{hello['port']}"
            config = daemon_config(plan, endpoint, hello["project_id"], hook, tmp / "state.db")
            (tmp / "monitor.yaml").write_text(yaml.safe_dump(config))
            daemon = await procs.Daemon.spawn(
                "daemon", "-m", "monitor", "--log-format", "json", "run",
                "--config", str(tmp / "monitor.yaml"),
            )  # fmt: skip
            stack.push_async_callback(daemon.stop)
            cpu_at_start = sup.proc_cpu_s(daemon.proc.pid) or 0.0
            hwm = await drive(plan, sim, daemon, receiver)
        return analyse(tmp, daemon, receiver, hwm, cpu_at_start, PAGE_SIZE)


def make_plans(args: argparse.Namespace, key_ok: bool) -> tuple[list[Plan], list[str]]:
    """The runs to do, and notes on what was changed or left out."""
    plans, notes = [], []
    for name in args.scenarios:
        sc = sup.SCENARIOS[name]
        for mode in args.modes:
            if not key_ok and mode != "full":
                notes.append(
                    f"{name}/{mode} skipped: the daemon has no poll.mode (full ran without it)"
                )
                continue
            interval, cycles, changed = args.interval, args.cycles, []
            if mode == "full" and sc.full_interval > interval:
                interval = sc.full_interval
                changed.append(f"interval {interval:g}s")
            if mode == "full" and 0 < sc.full_cycles < cycles:
                cycles = sc.full_cycles
                changed.append(f"{cycles} active cycles")
            note = f"full mode is expensive here: {', '.join(changed)}" if changed else ""
            plans.append(Plan(sc, mode, interval, cycles, key_ok, args.seed, note))
    return plans, notes


async def run_all(plans: list[Plan]) -> list[dict[str, Any]]:
    """Every run in turn, each bounded by its budget; a failed run is recorded, not raised."""
    procs.stop_on_sigterm()
    results = []
    for plan in plans:
        entry: dict[str, Any] = {"scenario": plan.scenario.name, "mode": plan.mode}
        entry.update(interval=plan.interval, active_cycles=plan.cycles, mode_key=plan.mode_key)
        entry["notes"] = [plan.note] if plan.note else []
        status = await procs.bounded_run(entry, run_one(plan), plan.budget_s())
        if (burst := entry.get("summary", {}).get("burst_size", 100)) < 100:
            entry["notes"].append(f"the burst killed {burst}, all the jobs running then")
        print(f"{plan.scenario.name}/{plan.mode}: {entry['wall_s']} s, {status}", flush=True)
        results.append(entry)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; --quick means S and M with 4 active cycles."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scenarios", help="comma-separated, of S,M,L (default all; quick: S,M)")
    parser.add_argument("--modes", default="incremental,full", help="comma-separated poll modes")
    parser.add_argument("--cycles", type=int, help="active cycles per run (default 10; quick: 4)")
    parser.add_argument("--interval", type=float, default=2.0, help="poll interval in seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a short run: S and M, 4 cycles")
    parser.add_argument("--out", default=str(sup.REPO / "benchmarks" / "results" / "scale.json"))
    parser.add_argument(
        "--mode-key",
        choices=["auto", "always", "never"],
        default="auto",
        help="write poll.mode into the config: auto = when the daemon accepts it",
    )
    args = parser.parse_args(argv)
    args.scenarios = (args.scenarios or ("S,M" if args.quick else "S,M,L")).split(",")
    args.modes = args.modes.split(",")
    if unknown := [s for s in args.scenarios if s not in sup.SCENARIOS]:
        parser.error(f"unknown scenarios {unknown}")
    if unknown := [m for m in args.modes if m not in ("incremental", "full")]:
        parser.error(f"unknown modes {unknown}")
    args.cycles = args.cycles or (4 if args.quick else 10)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every plan, print the tables, write the JSON; exit 1 if a run failed."""
    args = parse_args(argv)
    key_ok = {"always": True, "never": False}.get(args.mode_key)
    if key_ok is None:
        key_ok = mode_key_supported()
    plans, notes = make_plans(args, key_ok)
    try:
        results = asyncio.run(run_all(plans))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; the simulator and the daemon were stopped", file=sys.stderr)
        return 130
    ratios = scale_report.mode_ratios(results)
    scale_report.print_report(results, ratios, notes)
    meta = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "argv": sys.argv[1:] if argv is None else argv,
        "page_size": PAGE_SIZE,
        "seed": args.seed,
        "mode_key": key_ok,
        "drain_cycles": DRAIN_CYCLES,
        "scenarios": {name: vars(sup.SCENARIOS[name]) for name in args.scenarios},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"meta": meta, "runs": results, "ratios": ratios, "notes": notes}
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {out}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
