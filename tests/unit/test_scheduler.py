"""The scheduler wiring's job wrapper: in-flight runs are tracked, waited for and stopped."""

from __future__ import annotations

import asyncio

import pytest

from monitor.scheduler import TrackedJob


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
