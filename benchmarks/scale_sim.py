"""The simulator process of the scale benchmark: a seeded DLI project, served and kept busy.

``python -m benchmarks.scale_sim --scenario S --seed 7 --interval 2 --truth T --requests R
--stats S`` builds the project (terminal history spread over days; the initial active jobs,
a few of them created days ago), serves it (`make_app`, auth none, or with ``--auth token``
IAM tokens for the user `IAM_DOMAIN`/`IAM_USER`, behind one timing middleware) on 127.0.0.1 at
a free port, prints ``{"port": N, ...}`` first, and then obeys one command per stdin line,
acknowledging each with a JSON line on stdout:

- ``go``: start the activity on the wall clock, a step every ``--step`` (±50%) seconds: new
  jobs (``starting``, then ``running`` 0.5-2.5 intervals later), ends (``success``, 10%
  ``dead``) at rates that pull the active count to the scenario's target, and short-lived
  jobs that end 0.1-0.45 intervals after they were created;
- ``pause`` / ``resume``: freeze and thaw all activity; ``burst``: 100 running jobs (all of
  them when fewer run) die at once; ``stop`` (or end of stdin, SIGTERM, ``--max-seconds``):
  write the files and exit;
- ``fault {json}``: arm a DLI fault, or ``{"kind": "clear"}`` (`benchmarks.soak_faults`);
- ``hold {"seconds": S, "min_offset": N}``: hold the next listing request at offset >= N for S
  seconds, printing ``{"held": "list_batches", ...}`` the moment it is held; ``hold {}``
  disarms (the soak SIGKILLs the daemon mid-listing with it).

``--truth`` gets a line per job creation, state change and command as it happens (format:
`benchmarks.scale_support`); at exit ``--requests`` gets ``[start wall s, seconds in the
handlers, operation, status]`` per API request and ``--stats`` the process CPU (and the
faults armed and fired, and the IAM token answers by status).

The world and its activity are `scale_sim_activity`'s (`Project`, `Driver`), the faults
`soak_sim_faults`'; this file serves them and obeys the commands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from benchmarks.scale_sim_activity import Driver, Project
from benchmarks.scale_support import SCENARIOS
from benchmarks.soak_sim_faults import SimFaults
from monitor.simulator import make_app

PROJECT = "5ca1e0000000000000000000000000be"
IAM_DOMAIN = "soak-domain"
IAM_USER = "soak-user"
IAM_PASSWORD = "soak-password-not-a-secret"
"""The one IAM user of ``--auth token`` (loopback only; not a credential of anything)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def cpu_s() -> float:
    """This process's user + system CPU seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class RequestLog:
    """An outer middleware that times every request the simulator answers."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, float, str, int]] = []

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Time one request from routing to the finished response object."""
        wall, started, status = time.time(), time.perf_counter(), 500
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            name = request.match_info.route.name or "unknown"
            self.rows.append((round(wall, 6), time.perf_counter() - started, name, status))


class Control:
    """The stdin commands, acknowledged on stdout and logged in the ground truth."""

    def __init__(self, driver: Driver, starting: list[str], stop: asyncio.Event) -> None:
        self.driver = driver
        self.starting = starting
        self.stop = stop
        self.cpu_at_go: float | None = None
        self.faults = SimFaults(driver.project, driver)

    def handle(self, command: str) -> None:
        """Carry out one command."""
        extra: dict[str, Any] = {}
        command, _, argument = command.partition(" ")
        if command == "fault":
            extra = self.faults.apply(json.loads(argument))
        elif command == "hold":
            extra = self.faults.hold(json.loads(argument or "{}"))
        elif command == "go":
            self.cpu_at_go = cpu_s()
            self.driver.start(self.starting)
        elif command == "pause":
            self.driver.active = False
        elif command == "resume":
            self.driver.active = True
        elif command == "burst":
            extra["n"] = self.driver.burst()
        elif command == "stop":
            self.stop.set()
        else:
            print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
            return
        record = {"t": time.time(), "control": command, **extra}
        self.driver.project.write(record)
        self.driver.project.truth.flush()
        print(json.dumps({"ack": command, **record}), flush=True)

    async def read(self) -> None:
        """Read commands from stdin until it closes."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if line.strip():
                self.handle(line.decode().strip())
        self.stop.set()


def write_results(args: argparse.Namespace, log: RequestLog, control: Control) -> None:
    """The request log and the CPU figures."""
    with Path(args.requests).open("w") as out:
        for row in log.rows:
            out.write(json.dumps(row) + "\n")
    total = cpu_s()
    iam = Counter(str(row[3]) for row in log.rows if row[2] == "iam_token")
    stats = {
        "cpu_s": total,
        "cpu_s_since_go": None if control.cpu_at_go is None else total - control.cpu_at_go,
        "handler_s": sum(row[1] for row in log.rows),
        "requests": len(log.rows),
        "faults_armed": dict(control.faults.armed),
        "faults_fired": dict(control.faults.fired),
        "holds": control.faults.holds,
        "faults_expired": dict(control.faults.expired),
        "iam_token_answers": dict(iam),
    }
    Path(args.stats).write_text(json.dumps(stats))


async def serve(args: argparse.Namespace, truth: IO[str]) -> None:
    """Build, serve, obey commands, write the files."""
    project = Project(SCENARIOS[args.scenario], args.seed, truth)
    running, starting = project.build()
    truth.flush()
    driver = Driver(project, args.interval, args.step, args.seed)
    driver.running = running
    log = RequestLog()
    credentials = {f"{IAM_DOMAIN}/{IAM_USER}": IAM_PASSWORD} if args.auth == "token" else None
    app = make_app(project.world, project_id=PROJECT, auth=args.auth, credentials=credentials)
    app.middlewares.insert(0, log.middleware)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    control = Control(driver, starting, stop)
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        jobs = len(project.world.jobs)
        hello = {"port": port, "project_id": PROJECT, "jobs": jobs, "auth": args.auth}
        print(json.dumps(hello), flush=True)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        tasks = [asyncio.create_task(driver.run()), asyncio.create_task(control.read())]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.max_seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await runner.cleanup()
        write_results(args, log, control)


def main(argv: list[str] | None = None) -> None:
    """Open the ground-truth file and run the simulator until told to stop."""
    args = parse_args(argv)
    with Path(args.truth).open("w") as truth:
        asyncio.run(serve(args, truth))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="S")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--interval", type=float, default=2.0, help="the daemon's poll interval")
    parser.add_argument("--step", type=float, default=0.25, help="seconds between steps")
    parser.add_argument("--truth", required=True, help="ground-truth JSONL to write")
    parser.add_argument("--requests", required=True, help="request log JSONL to write at exit")
    parser.add_argument("--stats", required=True, help="CPU figures JSON to write at exit")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="exit after this long")
    parser.add_argument("--auth", choices=("none", "token"), default="none", help="gateway auth")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
