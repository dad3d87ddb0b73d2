"""Fault soak: does the real daemon lose, double or invent events while everything misbehaves?

``python -m benchmarks.soak --minutes M --seed N [--interval S] [--out FILE]``

On 127.0.0.1 only, it starts the simulator process (`scale_sim`, scenario ``soak``: 3 queues,
300 history jobs, ~30 active, jobs starting, running and ending, 10% of them dead, some living
less than one poll interval), the daemon (``python -m monitor run``, JSON logs, ``poll.mode:
incremental``, ``max_requests_per_minute: 0``, short DLI retries and ``request_timeout``,
``delivery.backoff`` [1s, 2s, 4s, 8s], one ``webhook`` sink, a state file in a temporary folder
kept across restarts) and, in this process, the webhook receiver. After the silent baseline
cycle the simulator's activity starts and, for M minutes, the seeded fault schedule of
`benchmarks.soak_faults` runs: DLI faults (5xx bursts, 429 + Retry-After, answers slower than
the request timeout, malformed/truncated bodies, inserts while paging), SIGTERM and SIGKILL of
the daemon (restarted after a short pause) and receiver outages (503, refused connections,
500, 429 + Retry-After, slow answers). Disk-full and clock-jump faults are not injected.

Then the faults stop, the activity pauses, and the daemon gets 3 good cycles (every target
polled) to catch up, the last with an empty outbox. The receiver's log is matched with the
ground truth (`soak_support.account`, the semantics of `scale_support.compare_events`: a state
held over a whole good cycle must be reported, briefer ones may be). It prints a summary,
writes JSON (``--out``) and exits 1 when an event was missed or false, or a real duplicate
(a second event id for the same job and state) exists; else 0. Redeliveries of the same
event id are counted, not failed: delivery is at least once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from benchmarks import scale_procs as procs
from benchmarks import scale_support as sup
from benchmarks import soak_faults as sf
from benchmarks.soak_support import FaultyReceiver, account, print_summary

PAGE_SIZE = 20
REQUEST_TIMEOUT_S = 2.0
DELIVERY_TIMEOUT_S = 3.0
DRAIN_CYCLES = 3
NOISE = re.compile(r"request_id=\w+|next run at: [^)]*|\d{4}-\d\d-\d\dT[\d:.+]+")
"""Parts of warning texts left out when counting them by kind."""


def daemon_config(
    interval: float, endpoint: str, project: str, hook: str, state: Path
) -> dict[str, Any]:
    """The daemon's config: every queue, incremental, unlimited requests, short retries."""
    return {
        "dli": {
            "endpoint": endpoint,
            "project_id": project,
            "auth": {"type": "none"},
            "page_size": PAGE_SIZE,
            "request_timeout": REQUEST_TIMEOUT_S,
            "max_requests_per_minute": 0,
            "retry": {"attempts": 3, "backoff": [0.5, 1.0]},
        },
        "queues": sup.queue_names(sup.SCENARIOS["soak"].queues),
        "poll": {"interval": interval, "mode": "incremental"},
        "state": {"path": str(state)},
        "server": {"enabled": False},
        "delivery": {"backoff": [1.0, 2.0, 4.0, 8.0], "timeout": DELIVERY_TIMEOUT_S},
        "shutdown_timeout": 5.0,
        "rules": {"stuck_starting_after": 0, "stuck_recovering_after": 0, "overdue_factor": 0},
        "sinks": [{"name": "soak", "type": "webhook", "url": hook}],
    }


class Supervisor:
    """Keeps one daemon running: signals it on schedule, restarts it, notices crashes."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.daemons: list[procs.Daemon] = []
        self.signals: Counter[str] = Counter()
        self.restarts = 0
        self.unexpected_exits = 0
        self.crashes: list[str] = []
        """The last output lines of each daemon that ended unexpectedly."""
        self.escalated = 0
        self.lock = asyncio.Lock()
        self.closing = False
        self.watchers: set[asyncio.Task[None]] = set()

    @property
    def current(self) -> procs.Daemon:
        """The newest daemon process."""
        return self.daemons[-1]

    async def start(self) -> None:
        """Spawn a daemon and watch for it exiting on its own."""
        daemon = await procs.Daemon.spawn(
            f"daemon#{len(self.daemons)}", "-m", "monitor", "--log-format", "json",
            "run", "--config", str(self.config),
        )  # fmt: skip
        self.daemons.append(daemon)
        watcher = asyncio.create_task(self._watch(daemon))
        self.watchers.add(watcher)
        watcher.add_done_callback(self.watchers.discard)

    async def _watch(self, daemon: procs.Daemon) -> None:
        await daemon.proc.wait()
        if daemon.expected_exit or self.closing:
            return
        self.unexpected_exits += 1
        self.crashes.append(f"exit {daemon.proc.returncode}: " + " | ".join(list(daemon.tail)[-4:]))
        async with self.lock:
            if daemon is self.current and not self.closing:
                await asyncio.sleep(1.0)
                await self.start()
                self.restarts += 1

    async def hit(self, kind: str, pause: float) -> None:
        """SIGTERM or SIGKILL the daemon, wait for its exit, restart it after `pause` seconds."""
        async with self.lock:
            daemon = self.current
            if daemon.proc.returncode is not None:
                return
            daemon.expected_exit = True
            self.signals[kind] += 1
            if kind == "sigkill":
                daemon.proc.kill()
            else:
                daemon.proc.terminate()
            try:
                await asyncio.wait_for(daemon.proc.wait(), 20)
            except TimeoutError:
                self.escalated += 1
            await daemon.stop(grace=1)
            await asyncio.sleep(pause)
            await self.start()
            self.restarts += 1

    async def close(self) -> None:
        """SIGTERM the daemon (SIGKILL after 20 s); no more restarts."""
        self.closing = True
        async with self.lock:
            for daemon in self.daemons:
                daemon.expected_exit = True
                await daemon.stop(grace=20)
        for watcher in list(self.watchers):
            watcher.cancel()

    def cycles(self) -> list[dict[str, Any]]:
        """Every "cycle completed" line of every daemon after the very first (the baseline)."""
        lines = [line for daemon in self.daemons for line in daemon.cycles][1:]
        rows = []
        for line in lines:
            end = datetime.fromisoformat(line["timestamp"]).timestamp()
            start = end - float(line.get("duration_s", 0.0))
            ok = not line.get("targets_failed")
            rows.append({"start": start, "end": end, "ok": ok, "pending": line.get("pending")})
        return sorted(rows, key=lambda row: row["start"])

    async def settle(self, since: float, timeout: float) -> bool:
        """Wait for `DRAIN_CYCLES` good cycles begun after `since`, the last with no pending."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    good = [row for row in self.cycles() if row["start"] > since and row["ok"]]
                    if len(good) >= DRAIN_CYCLES and good[-1]["pending"] == 0:
                        return True
                    await asyncio.sleep(0.2)
        return False


async def lane(
    faults: list[sf.Fault],
    started: float,
    seconds: float,
    sim: procs.Sim,
    sup_: Supervisor,
    receiver: FaultyReceiver,
) -> None:
    """Carry out one lane's faults in order, on the wall clock."""
    for fault in faults:
        await asyncio.sleep(max(0.0, started + fault.at - time.monotonic()))
        if fault.lane == "dli":
            await sim.command("fault " + json.dumps({"kind": fault.kind, **fault.params}))
        elif fault.lane == "process":
            await sup_.hit(fault.kind, fault.params["pause"])
        else:
            await receiver.set_mode(fault.kind, fault.params)
            left = started + seconds - time.monotonic()
            await asyncio.sleep(max(0.0, min(fault.seconds, left)))
            await receiver.set_mode(None)


async def soak(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Run the simulator, the supervised daemon and the receiver through the schedule."""
    seconds = args.minutes * 60
    schedule = sf.schedule(
        args.seed, seconds, request_timeout=REQUEST_TIMEOUT_S, page_size=PAGE_SIZE
    )
    receiver = FaultyReceiver(args.seed)
    async with AsyncExitStack() as stack:
        hook = await stack.enter_async_context(receiver.serving())
        sim = await procs.Sim.spawn(
            "simulator", "-m", "benchmarks.scale_sim", "--scenario", "soak",
            "--seed", str(args.seed), "--interval", str(args.interval),
            "--truth", str(tmp / "truth.jsonl"), "--requests", str(tmp / "requests.jsonl"),
            "--stats", str(tmp / "stats.json"), "--max-seconds", str(seconds + 600),
        )  # fmt: skip
        stack.push_async_callback(sim.finish)
        await sim.wait_for(lambda: any("port" in line for line in sim.lines), 120, "port")
        hello = next(line for line in sim.lines if "port" in line)
        endpoint = f"http://127.0.0.1:{hello['port']}"
        config = daemon_config(args.interval, endpoint, hello["project_id"], hook, tmp / "state.db")
        (tmp / "monitor.yaml").write_text(yaml.safe_dump(config))
        supervisor = Supervisor(tmp / "monitor.yaml")
        await supervisor.start()
        stack.push_async_callback(supervisor.close)
        await supervisor.current.wait_cycles(1, timeout=120)
        await sim.command("go")
        started = time.monotonic()
        lanes = [[f for f in schedule if f.lane == name] for name in ("dli", "process", "sink")]
        await asyncio.gather(
            *(lane(faults, started, seconds, sim, supervisor, receiver) for faults in lanes)
        )
        await sim.command('fault {"kind": "clear"}')
        await receiver.set_mode(None)
        await sim.command("pause")
        drained = await supervisor.settle(time.time(), timeout=60 + 10 * args.interval)
        await receiver.settle(1.0, args.interval + 5)
    return analyse(args, tmp, schedule, supervisor, receiver, drained)


def analyse(
    args: argparse.Namespace,
    tmp: Path,
    schedule: list[sf.Fault],
    supervisor: Supervisor,
    receiver: FaultyReceiver,
    drained: bool,
) -> dict[str, Any]:
    """Match the receipts with the ground truth; count the faults."""
    truth = sup.Truth.load(tmp / "truth.jsonl")
    cycles = supervisor.cycles()
    good = [(row["start"], row["end"]) for row in cycles if row["ok"]]
    go = truth.control_time("go") or 0.0
    accounting = account(truth, good, receiver.events, go)
    stats = json.loads((tmp / "stats.json").read_text())
    injected = Counter(stats.get("faults_fired", {}))
    injected.update(supervisor.signals)
    injected.update(receiver.episodes)
    scheduled = Counter(fault.kind for fault in schedule)
    faults = {
        kind: {"scheduled": scheduled[kind], "injected": injected[kind], "unit": sf.UNITS[kind]}
        for kind in sf.ALL_KINDS
    }
    for kind, count in receiver.affected.items():
        faults[kind]["requests_affected"] = count
    summary = accounting.summary()
    summary.update(
        restarts=supervisor.restarts,
        unexpected_exits=supervisor.unexpected_exits,
        sigterm_escalated_to_sigkill=supervisor.escalated,
        cycles=len(cycles),
        cycles_failed=sum(not row["ok"] for row in cycles),
        drained=drained,
        daemon_warnings=sum(len(daemon.warnings) for daemon in supervisor.daemons),
        daemon_exit_codes=dict(Counter(str(d.proc.returncode) for d in supervisor.daemons)),
    )
    ok = not (summary["missed"] or summary["false"] or summary["duplicates_real"])
    warnings = Counter(NOISE.sub("…", w) for daemon in supervisor.daemons for w in daemon.warnings)
    meta = {
        "minutes": args.minutes, "seed": args.seed, "interval": args.interval,
        "page_size": PAGE_SIZE, "request_timeout_s": REQUEST_TIMEOUT_S,
        "delivery_timeout_s": DELIVERY_TIMEOUT_S, "scenario": asdict(sup.SCENARIOS["soak"]),
        "not_injected": list(sf.NOT_INJECTED), "argv": sys.argv[1:],
    }  # fmt: skip
    details = {
        "missed": accounting.missed[:30],
        "false": accounting.false[:30],
        "real_duplicates": accounting.real_duplicates[:30],
        "warnings": dict(warnings.most_common(30)),
        "crashes": supervisor.crashes[:10],
        "order_breaks": [
            w for daemon in supervisor.daemons for w in daemon.warnings if "order" in w
        ][:10],
        "schedule": [asdict(fault) for fault in schedule],
    }
    return {"ok": ok, "meta": meta, "summary": summary, "faults": faults, "details": details}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, required=True, help="how long faults run")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--interval", type=float, default=2.0, help="the daemon's poll interval")
    parser.add_argument("--out", default=str(sup.REPO / "benchmarks" / "results" / "soak.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the soak, print and write the result; 0 when nothing was lost, doubled or false."""
    args = parse_args(argv)
    budget = args.minutes * 60 + 600
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as name:
            report = asyncio.run(asyncio.wait_for(soak(args, Path(name)), budget))
    except (procs.RunFailed, TimeoutError) as exc:
        print(f"soak failed: {exc or f'over {budget:.0f} s'}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the simulator and the daemon were stopped", file=sys.stderr)
        return 130
    print_summary(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
