"""APScheduler wiring: when the cycle and the outbox drain run, and how they stop.

Interval jobs on an `AsyncIOScheduler`: a poll cycle per DLI project (first run immediately;
`CYCLE_JOB` for a single project, `poll-cycle:<name>` per listed project) and a frequent outbox
drain for retries that fall due between cycles. Both run with
`max_instances=1` and `coalesce=True`, so a slow cycle is never doubled and missed runs collapse
into one. `TrackedJob` remembers the running task so shutdown can wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import undefined

log = structlog.get_logger(__name__)

CYCLE_JOB = "poll-cycle"
DELIVERY_JOB = "outbox-drain"


class TrackedJob:
    """Wraps an async job function and remembers its in-flight runs."""

    def __init__(self, name: str, func: Callable[[], Awaitable[Any]]) -> None:
        self.name = name
        self._func = func
        self._running: set[asyncio.Task[Any]] = set()
        self._stopping: set[asyncio.Task[Any]] = set()

    async def run(self) -> None:
        """Run the job once (APScheduler needs a real coroutine function to await it).

        A run that `cancel` stopped at shutdown ends quietly: that is the planned end of a
        drain that ran out of time, not a failed job for the scheduler to report.
        """
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await self._func()
        except asyncio.CancelledError:
            if task is None or task not in self._stopping:
                raise
        finally:
            if task is not None:
                self._running.discard(task)
                self._stopping.discard(task)

    async def wait(self, timeout: float) -> bool:
        """Wait for the in-flight runs to finish; True if they did within `timeout`."""
        running = [t for t in self._running if t is not asyncio.current_task()]
        if not running:
            return True
        _done, pending = await asyncio.wait(running, timeout=max(0.0, timeout))
        return not pending

    async def cancel(self) -> None:
        """Cancel the runs still in flight and wait until they have unwound."""
        running = [t for t in self._running if t is not asyncio.current_task()]
        for task in running:
            self._stopping.add(task)
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


def build_scheduler(
    *,
    cycle: TrackedJob | None,
    interval_s: float,
    delivery: TrackedJob,
    delivery_interval_s: float,
) -> AsyncIOScheduler:
    """An `AsyncIOScheduler` with the cycle as `CYCLE_JOB` (starting now; None: the caller
    adds one job per project) and the outbox drain."""
    scheduler = AsyncIOScheduler(timezone=UTC)
    if cycle is not None:
        add_periodic(scheduler, cycle, job_id=CYCLE_JOB, interval_s=interval_s, start_now=True)
    add_periodic(scheduler, delivery, job_id=DELIVERY_JOB, interval_s=delivery_interval_s)
    return scheduler


def add_periodic(
    scheduler: AsyncIOScheduler,
    job: TrackedJob,
    *,
    job_id: str,
    interval_s: float,
    start_now: bool = False,
) -> None:
    """An interval job that never overlaps itself and collapses missed runs into one."""
    scheduler.add_job(
        job.run,
        IntervalTrigger(seconds=interval_s, timezone=UTC),
        id=job_id,
        name=job.name,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(interval_s)),
        next_run_time=datetime.now(UTC) if start_now else undefined,
    )


def run_soon(scheduler: AsyncIOScheduler, job_id: str, delay_s: float) -> None:
    """Bring the job's next run forward to `delay_s` from now (later runs follow from it)."""
    scheduler.modify_job(job_id, next_run_time=datetime.now(UTC) + timedelta(seconds=delay_s))


def set_interval(scheduler: AsyncIOScheduler, job_id: str, interval_s: float) -> None:
    """Run an interval job every `interval_s` from now on (the next run moves accordingly)."""
    scheduler.reschedule_job(job_id, trigger=IntervalTrigger(seconds=interval_s, timezone=UTC))


class ClockWatch:
    """Re-plans the interval jobs when the wall clock steps (NTP, a resumed VM, an operator).

    APScheduler 3 plans on the wall clock: after a step back of N seconds it would start no job
    for N seconds (and the next poll would come that much late). This watch runs on the event
    loop's monotonic clock, compares how far both clocks moved each second, and on a step of
    more than `tolerance_s` restarts every interval job's plan from now (one warning each time).
    """

    def __init__(
        self,
        scheduler: AsyncIOScheduler,
        *,
        tolerance_s: float = 2.0,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_step: Sequence[Callable[[], Awaitable[object]]] = (),
    ) -> None:
        """`on_step` runs after each step (e.g. bringing wall-clock retry times forward)."""
        self._on_step = tuple(on_step)
        self._scheduler = scheduler
        self._tolerance = tolerance_s
        self._wall = wall
        self._monotonic = monotonic
        self._last = (wall(), monotonic())
        self._task: asyncio.Task[None] | None = None
        self.steps = 0

    def check(self) -> float:
        """Compare both clocks since the last check; returns the step seen (0 within tolerance)."""
        wall, mono = self._wall(), self._monotonic()
        step = (wall - self._last[0]) - (mono - self._last[1])
        self._last = (wall, mono)
        if abs(step) <= self._tolerance:
            return 0.0
        self.steps += 1
        replanned = []
        for job in self._scheduler.get_jobs():
            if isinstance(job.trigger, IntervalTrigger):
                seconds = job.trigger.interval.total_seconds()
                self._scheduler.reschedule_job(
                    job.id, trigger=IntervalTrigger(seconds=seconds, timezone=UTC)
                )
                replanned.append(job.id)
        log.warning("wall clock stepped; jobs planned again from now", step_s=round(step, 1),
                    jobs=replanned)  # fmt: skip
        return step

    def start(self, every_s: float = 1.0) -> None:
        """Check every `every_s` seconds (monotonic) until `stop`."""
        self._last = (self._wall(), self._monotonic())
        self._task = asyncio.get_running_loop().create_task(self._run(every_s))

    async def _run(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            if self.check():
                await self.after_step()

    async def after_step(self) -> None:
        """Run the `on_step` callbacks; one that fails is logged and the others still run."""
        for callback in self._on_step:
            try:
                await callback()
            except Exception:
                log.exception("clock step follow-up failed")

    async def stop(self) -> None:
        """Stop checking."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def drain(scheduler: AsyncIOScheduler, jobs: list[TrackedJob], timeout: float) -> bool:
    """Stop starting jobs, wait up to `timeout` for running ones, then shut the scheduler down.

    Returns True when every running job finished in time; the others are cancelled.
    """
    scheduler.pause()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    finished = True
    for job in jobs:
        finished = await job.wait(deadline - loop.time()) and finished
    if not finished:
        for job in jobs:
            await job.cancel()
    scheduler.shutdown(wait=False)
    return finished
