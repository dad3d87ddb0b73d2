"""The scale simulator's project and its activity: a seeded DLI world kept busy on the wall clock.

`Project` builds the scenario's world (terminal history spread over days; the initial active
jobs, a few of them created days ago) and writes every job creation and state change to the
ground-truth file as it happens (format: `benchmarks.scale_support`). `Driver` runs the steady
activity: new jobs, promotions to running, ends at rates that pull the active count to the
scenario's target, short-lived jobs, and the burst. Serving the world and obeying the harness's
commands is `scale_sim`'s; arming faults is `soak_sim_faults`'.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import math
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from benchmarks.scale_support import Scenario, queue_names
from monitor.simulator import World

BURST = 100
DEAD_SHARE = 0.1
HISTORY_DEAD_SHARE = 0.12


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
