"""The DLI request budget: never more than N calls in any 60-second window."""

from __future__ import annotations

import asyncio
import bisect
import random

import pytest

from monitor.dli.budget import RequestBudget


class FakeTime:
    """A monotonic clock and a sleep that advances it instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def _busiest_window(stamps: list[float], window: float = 60.0) -> int:
    """The most timestamps that fall in any half-open window [t, t + 60) starting at one."""
    ordered = sorted(stamps)
    return max(bisect.bisect_left(ordered, start + window) - i for i, start in enumerate(ordered))


def _budget(limit: int, time: FakeTime) -> RequestBudget:
    return RequestBudget(limit, monotonic=time.monotonic, sleep=time.sleep)


async def test_a_long_back_to_back_run_never_exceeds_the_limit_in_any_window() -> None:
    time = FakeTime()
    budget = _budget(20, time)
    stamps = []
    for _ in range(500):
        await budget.acquire()
        stamps.append(time.now)
    assert _busiest_window(stamps) == 20
    # ...and it is not needlessly slow: 25 full windows for 500 calls.
    assert stamps[-1] - stamps[0] == pytest.approx(24 * 60)


async def test_random_arrivals_never_exceed_the_limit_in_any_window() -> None:
    time = FakeTime()
    budget = _budget(7, time)
    rng = random.Random(42)
    stamps = []
    for _ in range(2000):
        time.now += rng.choice([0.0, 0.0, 0.5, 3.0, 11.0, 45.0])
        await budget.acquire()
        stamps.append(time.now)
    assert _busiest_window(stamps) <= 7


async def test_a_token_bucket_burst_pattern_is_not_let_through() -> None:
    time = FakeTime()
    budget = _budget(20, time)
    stamps = []
    for _ in range(20):  # a full burst at the end of one minute...
        await budget.acquire()
        stamps.append(time.now)
    time.now += 59.0
    for _ in range(20):  # ...and another one second later would make 40 in a minute
        await budget.acquire()
        stamps.append(time.now)
    assert _busiest_window(stamps) == 20
    assert stamps[20] == pytest.approx(stamps[0] + 60.0)


async def test_concurrent_callers_share_the_limit() -> None:
    time = FakeTime()
    budget = _budget(10, time)
    stamps: list[float] = []

    async def call() -> None:
        await budget.acquire()
        stamps.append(time.now)

    await asyncio.gather(*(call() for _ in range(55)))
    assert len(stamps) == 55
    assert _busiest_window(stamps) == 10


@pytest.mark.parametrize("limit", [0, -1])
async def test_a_limit_of_zero_or_less_never_waits(limit: int) -> None:
    time = FakeTime()
    budget = _budget(limit, time)
    for _ in range(1000):
        await budget.acquire()
    assert time.sleeps == []


async def test_calls_within_the_limit_do_not_wait() -> None:
    time = FakeTime()
    budget = _budget(5, time)
    for _ in range(5):
        await budget.acquire()
    assert time.sleeps == []
    await budget.acquire()
    assert time.sleeps == [pytest.approx(60.0)]
