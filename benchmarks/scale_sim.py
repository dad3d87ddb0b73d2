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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import json
import math
import random
import resource
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from benchmarks.scale_support import SCENARIOS, Scenario, queue_names
from benchmarks.soak_faults import SimFaults
from monitor.simulator import World, make_app

PROJECT = "5ca1e0000000000000000000000000be"
IAM_DOMAIN = "soak-domain"
IAM_USER = "soak-user"
IAM_PASSWORD = "soak-password-not-a-secret"
"""The one IAM user of ``--auth token`` (loopback only; not a credential of anything)."""
BURST = 100
DEAD_SHARE = 0.1
HISTORY_DEAD_SHARE = 0.12

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


class Project:
    """The world and every change made to it, written to the ground-truth file as it happens."""

    def __init__(self, scenario: Scenario, seed: int, truth: IO[str]) -> None:
        self.scenario = scenario
        self.world = World()
        self.queues = queue_names(scenario.queues)
        self.rng = random.Random(seed)
        self.truth = truth
        self.made = 0

    def new_id(self) -> str:
        """A job id drawn from the seeded generator (same seed, same ids)."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def write(self, record: dict[str, Any]) -> None:
        """One ground-truth line."""
        self.truth.write(json.dumps(record, separators=(",", ":")) + "\n")

    def create(self, tag: str, *, state: str = "starting", created: datetime | None = None) -> str:
        """Add a job (now, unless `created`) in a random queue; returns its id."""
        self.made += 1
        queue = self.rng.choice(self.queues)
        job = self.world.add_job(
            queue=queue,
            name=f"{queue}-job-{self.made:07d}",
            state=state,
            owner=f"user{self.made % 17}",
            job_id=self.new_id(),
            created=created,
        )
        self.record(job.id, queue, None, state, job.create_ms, tag)
        return job.id

    def change(self, job_id: str, state: str, tag: str) -> None:
        """Move a job to `state` and record it."""
        job = self.world.get(job_id)
        before = job.state
        self.world.set_state(job_id, state)
        self.record(job_id, job.queue, before, state, job.create_ms, tag)

    def record(
        self, job_id: str, queue: str, before: str | None, after: str, create_ms: int, tag: str
    ) -> None:
        """One job line of the ground truth, stamped now."""
        fields = {"id": job_id, "q": queue, "from": before, "to": after, "c": create_ms}
        self.write({"t": time.time(), **fields, "tag": tag})

    def build(self) -> tuple[list[str], list[str]]:
        """History and initial active jobs, added oldest first; returns (running, starting)."""
        sc, now = self.scenario, datetime.now(UTC)
        oldest = now - timedelta(days=sc.history_days)
        span = (now - timedelta(minutes=10) - oldest).total_seconds()
        plan = [
            (oldest + timedelta(seconds=self.rng.uniform(0, span)), "") for _ in range(sc.history)
        ]
        starting = max(1, sc.active // 5)
        for index in range(sc.active):
            if index < starting:
                ago, state = self.rng.uniform(5, 120), "starting"
            elif index < starting + sc.long_running:
                ago, state = self.rng.uniform(86_400, 3 * 86_400), "running"
            else:
                ago, state = self.rng.uniform(300, 3600), "running"
            plan.append((now - timedelta(seconds=ago), state))
        plan.sort(key=lambda item: item[0])
        running: list[str] = []
        begun: list[str] = []
        for created, state in plan:
            if state:
                job_id = self.create("initial", state=state, created=created)
                (begun if state == "starting" else running).append(job_id)
                continue
            final = "dead" if self.rng.random() < HISTORY_DEAD_SHARE else "success"
            job_id = self.create("history", state=final, created=created)
            job = self.world.get(job_id)
            job.update_ms = job.create_ms + int(self.rng.uniform(60, 5400) * 1000)
            job.duration_ms = job.update_ms - job.create_ms
        return running, begun


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson-distributed count (Knuth's method; the means here are small)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


class Driver:
    """Steady-state activity on the wall clock: starts, promotions, ends, short-lived jobs."""

    def __init__(self, project: Project, interval: float, step: float, seed: int) -> None:
        self.project = project
        self.interval = interval
        self.step = step
        self.rng = random.Random(seed + 1)
        self.running: list[str] = []
        self.starting: set[str] = set()
        self.due: list[tuple[float, int, str, str]] = []
        """(wall time, order, job id, "run" | "end") heap of scheduled changes."""
        self.order = itertools.count()
        self.active = False

    def schedule(self, after_intervals: float, job_id: str, action: str) -> None:
        """Do `action` to a job this many intervals from now."""
        moment = time.time() + after_intervals * self.interval
        heapq.heappush(self.due, (moment, next(self.order), job_id, action))

    def start(self, starting: list[str]) -> None:
        """Begin: the initial starting jobs get their promotion times."""
        for job_id in starting:
            self.starting.add(job_id)
            self.schedule(self.rng.uniform(0.3, 2.5), job_id, "run")
        self.active = True

    def tick(self) -> None:
        """One step: scheduled changes, then new jobs and ends drawn around the targets."""
        now, sc = time.time(), self.project.scenario
        while self.due and self.due[0][0] <= now:
            _, _, job_id, action = heapq.heappop(self.due)
            self.scheduled(job_id, action)
        share = self.step / self.interval
        gap = (sc.active - len(self.running) - len(self.starting)) / sc.active
        for _ in range(poisson(self.rng, sc.churn * share * min(3.0, max(0.2, 1 + 2 * gap)))):
            job_id = self.project.create("new")
            self.starting.add(job_id)
            self.schedule(self.rng.uniform(0.5, 2.5), job_id, "run")
        for _ in range(poisson(self.rng, sc.churn * share * min(3.0, max(0.2, 1 - 2 * gap)))):
            if self.running:
                self.end(self.pop_running(), "step")
        for _ in range(poisson(self.rng, sc.short_lived * share)):
            job_id = self.project.create("short")
            life = self.rng.uniform(0.1, 0.45)
            if self.rng.random() < 0.5:
                self.schedule(life / 2, job_id, "run")
            self.schedule(life, job_id, "end")
        self.project.truth.flush()

    def scheduled(self, job_id: str, action: str) -> None:
        """Carry out one scheduled change, if the job is still where it was meant to be."""
        state = self.project.world.get(job_id).state
        if action == "run" and state == "starting":
            self.project.change(job_id, "running", "step")
            if job_id in self.starting:
                self.starting.discard(job_id)
                self.running.append(job_id)
        elif action == "end" and state in ("starting", "running"):
            self.end(job_id, "short")

    def pop_running(self) -> str:
        """Take a random running job out of the pool."""
        at = self.rng.randrange(len(self.running))
        self.running[at], self.running[-1] = self.running[-1], self.running[at]
        return self.running.pop()

    def end(self, job_id: str, tag: str) -> None:
        """End a job: `dead` one time in ten, else `success`."""
        self.project.change(job_id, "dead" if self.rng.random() < DEAD_SHARE else "success", tag)

    def burst(self) -> int:
        """Kill up to `BURST` running jobs at once; returns how many."""
        count = min(BURST, len(self.running))
        for _ in range(count):
            self.project.change(self.pop_running(), "dead", "burst")
        self.project.truth.flush()
        return count

    async def run(self) -> None:
        """Tick every `step` seconds while active, until cancelled."""
        next_at, jitter = time.monotonic(), random.Random(self.rng.random())
        while True:
            next_at += self.step * jitter.uniform(0.5, 1.5)  # no phase lock with the polls
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if self.active:
                self.tick()


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
