"""The scheduler wiring: in-flight runs are tracked, waited for and stopped; a step of the wall
clock re-plans the interval jobs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.scheduler import ClockWatch, TrackedJob, add_periodic


async def a_run_that_never_ends() -> tuple[TrackedJob, asyncio.Task[None]]:
    """A tracked job whose run has started and waits forever."""
    started, never = asyncio.Event(), asyncio.Event()

    async def work() -> None:
        started.set()
        await never.wait()

    job = TrackedJob("cycle", work)
    task = asyncio.create_task(job.run())
    await started.wait()
    return job, task


async def test_a_run_stopped_by_the_drain_ends_quietly() -> None:
    job, task = await a_run_that_never_ends()
    assert not await job.wait(0)  # still running
    await job.cancel()
    assert task.done() and not task.cancelled() and task.exception() is None


async def test_a_run_cancelled_by_anyone_else_is_still_cancelled() -> None:
    _job, task = await a_run_that_never_ends()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_waiting_returns_once_the_runs_are_done() -> None:
    release = asyncio.Event()

    async def work() -> None:
        await release.wait()

    job = TrackedJob("cycle", work)
    task = asyncio.create_task(job.run())
    await asyncio.sleep(0)  # let the run start
    release.set()
    assert await job.wait(5)
    await task
    assert await job.wait(0)  # nothing left in flight


class SteppingClocks:
    """A wall clock and a monotonic clock that the test moves; `step` moves only the wall."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.offset = 0.0

    def wall(self) -> float:
        return 1_800_000_000.0 + self.mono + self.offset

    def monotonic(self) -> float:
        return self.mono


async def _noop() -> None:
    return None


@pytest.mark.parametrize("step", [-60.0, 90.0])
async def test_a_wall_clock_step_replans_interval_jobs_from_now(step: float) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    add_periodic(scheduler, TrackedJob("cycle", _noop), job_id="cycle", interval_s=30)
    scheduler.start(paused=True)
    try:
        # as APScheduler leaves it after a step back: the next run far beyond one interval
        planned = datetime.now(UTC) + timedelta(seconds=600)
        scheduler.modify_job("cycle", next_run_time=planned)
        clocks = SteppingClocks()
        watch = ClockWatch(scheduler, wall=clocks.wall, monotonic=clocks.monotonic)
        clocks.mono += 1
        assert watch.check() == 0.0  # both clocks moved alike
        assert scheduler.get_job("cycle").next_run_time == planned
        clocks.mono += 1
        clocks.offset += step  # what NTP does; the real wall clock stands for it below
        assert watch.check() == pytest.approx(step)
        replanned = scheduler.get_job("cycle").next_run_time
        due_in = (replanned - datetime.now(UTC)).total_seconds()
        assert 25 < due_in <= 30  # one interval from now, whatever the step
        assert watch.steps == 1
    finally:
        scheduler.shutdown(wait=False)


async def test_small_drift_is_not_a_step() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start(paused=True)
    try:
        clocks = SteppingClocks()
        watch = ClockWatch(scheduler, wall=clocks.wall, monotonic=clocks.monotonic)
        clocks.mono += 1
        clocks.offset += 0.5
        assert watch.check() == 0.0
        assert watch.steps == 0
    finally:
        scheduler.shutdown(wait=False)


async def test_after_a_step_every_follow_up_runs_even_when_one_fails() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    ran: list[str] = []

    async def broken() -> None:
        ran.append("broken")
        raise RuntimeError("boom")

    async def release() -> None:
        ran.append("release")

    watch = ClockWatch(scheduler, on_step=[broken, release])
    await watch.after_step()
    assert ran == ["broken", "release"]
