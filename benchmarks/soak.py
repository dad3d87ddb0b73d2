"""Fault soak: does the real daemon lose, double or invent events while everything misbehaves?

``python -m benchmarks.soak --minutes M --seed N [--interval S] [--out FILE] [--logs DIR]``

On 127.0.0.1 only, it starts the simulator process (`scale_sim`, scenario ``soak``: 3 queues,
300 history jobs, ~30 active, jobs starting, running and ending, 10% of them dead, some living
less than one poll interval; IAM token auth on), the daemon (``python -m monitor run``, JSON
logs, ``auth: token`` against the simulator's ``/v3/auth/tokens``, ``poll.mode:
incremental``, ``max_requests_per_minute: 0``, short DLI retries and ``request_timeout``,
``delivery.backoff`` [1s, 2s, 4s, 8s], one ``webhook`` sink, a state file in a temporary folder
kept across restarts; with libfaketime preloaded when it is installed) and, in this process,
the webhook receiver. After the silent baseline cycle the simulator's activity starts and, for
M minutes, the seeded fault schedule of `benchmarks.soak_faults` runs in four lanes: DLI
faults (5xx bursts, 429 + Retry-After, answers slower than the request timeout,
malformed/truncated bodies, inserts while paging, dropped connections, revoked IAM tokens),
process faults (`benchmarks.soak_kills`: SIGTERM and SIGKILL at random moments, and SIGKILL
mid-listing, mid-delivery and between commit and delivery; restarted after a short pause),
receiver faults (503, refused connections, 500, 429 + Retry-After, slow answers; a long outage
in runs of 4 minutes or more), wall-clock jumps of the daemon (`benchmarks.soak_clock`) and,
as root with a tmpfs for the state file, a full disk (`benchmarks.soak_disk`; the daemon's HTTP
server listens on 127.0.0.1, a free port, for /healthz and /metrics). Without libfaketime the
clock lane is left out and listed as not injected; with ``REQUIRE_TOOLS=1`` its absence is an
error (exit 2). Without root or tmpfs the disk lane is left out, and says why.

Then the faults stop, the activity pauses, and the daemon gets 3 good cycles (every target
polled) to catch up, the last with an empty outbox (the wait allows for a stall its clock's
last step back may cause). Cycles are timed by the harness's clock, never the daemon's. The
receiver's log is matched with the ground truth (`soak_support.account`, the semantics of
`scale_support.compare_events`: a state held over a whole good cycle must be reported, briefer
ones may be). It prints a summary (latency raw and net of the receiver's failing time; raw
duplicates after each SIGKILL; what the daemon showed of each full disk), writes JSON
(``--out``) and exits 1 when an event was missed or false, a real duplicate (a second event id
for the same job and state) exists, or the daemon exited unexpectedly during a disk_full
episode; else 0. Redeliveries of the same event id are counted, not failed: delivery is at
least once. Timings are printed, never judged.

The daemon's config is `soak_config`'s, the analysis of the run `soak_analysis`'s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import yaml

from benchmarks import scale_procs as procs
from benchmarks import scale_support as sup
from benchmarks import soak_faults as sf
from benchmarks import soak_kills as kills
from benchmarks.soak_analysis import SoakRun, analyse
from benchmarks.soak_clock import ClockFile, find_libfaketime, tools_required
from benchmarks.soak_config import PAGE_SIZE, REQUEST_TIMEOUT_S, daemon_config
from benchmarks.soak_disk import DiskLane, print_disk
from benchmarks.soak_support import FaultyReceiver, print_summary
from benchmarks.soak_tmpfs import DiskSpace, tmpfs


class Lanes:
    """Carries out the schedule's lanes, each in order on the harness's monotonic clock."""

    def __init__(
        self,
        seconds: float,
        sim: procs.Sim,
        supervisor: kills.Supervisor,
        receiver: FaultyReceiver,
        clock: ClockFile,
        disk: DiskLane,
    ) -> None:
        self.seconds = seconds
        self.sim = sim
        self.supervisor = supervisor
        self.receiver = receiver
        self.clock = clock
        self.disk = disk
        self.triggers = {
            "sigkill_listing": kills.listing_trigger(sim, PAGE_SIZE),
            "sigkill_delivery": kills.delivery_trigger(receiver),
            "sigkill_commit": kills.commit_trigger(receiver),
        }
        self.started = time.monotonic()

    async def run(self, schedule: list[sf.Fault]) -> None:
        """Every lane at once, from now."""
        self.started = time.monotonic()
        lanes = [[f for f in schedule if f.lane == name] for name in sorted(set(sf.LANES.values()))]
        await asyncio.gather(*(self._lane(faults) for faults in lanes))
        await self.sim.command('fault {"kind": "clear"}')
        await self.receiver.set_mode(None)
        self.clock.close()

    async def _lane(self, faults: list[sf.Fault]) -> None:
        for fault in faults:
            await asyncio.sleep(max(0.0, self.started + fault.at - time.monotonic()))
            if fault.lane == "dli":
                await self.sim.command("fault " + json.dumps({"kind": fault.kind, **fault.params}))
            elif fault.lane == "process":
                pause = fault.params["pause"]
                if fault.kind in self.triggers:  # not while a stalled daemon cannot meet it
                    await self.clock.wait_settled()
                    await self.supervisor.kill_at(fault.kind, self.triggers[fault.kind], pause)
                else:
                    await self.supervisor.hit(fault.kind, pause)
            elif fault.lane == "clock":
                await self._step(fault.params["offset"])
                await self._hold(fault)
                await self._step("+0")
            elif fault.lane == "disk":
                await self.disk.episode(fault, self.supervisor, self.clock)
            else:
                await self.receiver.set_mode(fault.kind, fault.params)
                await self._hold(fault)
                await self.receiver.set_mode(None)

    async def _step(self, offset: str) -> None:
        """Step the daemon's clock; a step back waits until no targeted kill waits."""
        if self.clock.is_back(offset):
            await self.supervisor.idle.wait()
        self.clock.step(offset)

    async def _hold(self, fault: sf.Fault) -> None:
        """Sleep for the fault's length, but not past the end of the fault phase."""
        left = self.started + self.seconds - time.monotonic()
        await asyncio.sleep(max(0.0, min(fault.seconds, left)))


async def soak(
    args: argparse.Namespace, tmp: Path, lib: str | None, space: DiskSpace
) -> dict[str, Any]:
    """Run the simulator, the supervised daemon and the receiver through the schedule."""
    seconds = args.minutes * 60
    schedule = sf.schedule(
        args.seed,
        seconds,
        request_timeout=REQUEST_TIMEOUT_S,
        page_size=PAGE_SIZE,
        clock_jumps=lib is not None,
        disk_full=space.available,
    )
    receiver = FaultyReceiver(args.seed)
    clock = ClockFile(tmp / "faketime.offset", lib)
    disk, state = DiskLane(space), (space.folder if space.available else tmp) / "state.db"
    async with AsyncExitStack() as stack:
        hook = await stack.enter_async_context(receiver.serving())
        sim = await procs.Sim.spawn(
            "simulator", "-m", "benchmarks.scale_sim", "--scenario", "soak", "--auth", "token",
            "--seed", str(args.seed), "--interval", str(args.interval),
            "--truth", str(tmp / "truth.jsonl"), "--requests", str(tmp / "requests.jsonl"),
            "--stats", str(tmp / "stats.json"), "--max-seconds", str(seconds + 600),
        )  # fmt: skip
        stack.push_async_callback(sim.finish)
        await sim.wait_for(lambda: any("port" in line for line in sim.lines), 120, "port")
        hello = next(line for line in sim.lines if "port" in line)
        endpoint = f"http://127.0.0.1:{hello['port']}"
        config = daemon_config(args.interval, endpoint, hello["project_id"], hook, state)
        (tmp / "monitor.yaml").write_text(yaml.safe_dump(config))
        supervisor = kills.Supervisor(tmp / "monitor.yaml", clock.env())
        await supervisor.start()
        stack.push_async_callback(supervisor.close)
        await supervisor.current.wait_cycles(1, timeout=120)
        await sim.command("go")
        await Lanes(seconds, sim, supervisor, receiver, clock, disk).run(schedule)
        await sim.command("pause")
        settle_s = 60 + 10 * args.interval + clock.stall_left()  # a last step back stalls it
        drained = await supervisor.settle(time.time(), timeout=settle_s)
        await receiver.settle(1.0, args.interval + 5)
    if args.logs:
        kills.keep_logs(Path(args.logs), [sim, *supervisor.daemons])
    return analyse(SoakRun(args, tmp, schedule, supervisor, receiver, clock, disk), drained)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, required=True, help="how long faults run")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--interval", type=float, default=2.0, help="the daemon's poll interval")
    parser.add_argument("--out", default=str(sup.REPO / "benchmarks" / "results" / "soak.json"))
    parser.add_argument("--logs", default=None, help="folder to keep every process's JSON lines")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the soak, print and write the result; 0 when nothing was lost, doubled or false."""
    args = parse_args(argv)
    lib = find_libfaketime()
    if lib is None and tools_required():
        print(
            "soak failed: libfaketime is required (REQUIRE_TOOLS=1) for clock_jump but is not "
            "installed; apt-get install faketime",
            file=sys.stderr,
        )
        return 2
    budget = args.minutes * 60 + 600
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as name, tmpfs(Path(name)) as space:
            if not space.available:
                print(f"disk_full lane skipped: {space.reason}", file=sys.stderr)
            report = asyncio.run(asyncio.wait_for(soak(args, Path(name), lib, space), budget))
    except (procs.RunFailed, TimeoutError) as exc:
        print(f"soak failed: {exc or f'over {budget:.0f} s'}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the simulator and the daemon were stopped", file=sys.stderr)
        return 130
    print_summary(report)
    print_disk(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
