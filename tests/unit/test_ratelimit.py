"""The sliding-window rate budget: never more than N sends in any window, on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.ratelimit import UNLIMITED, RateBudget, Window, budget_for, padded
from tests.conftest import FakeClock

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)


def sends_in_any_window(times: list[datetime], length_s: float) -> int:
    """The most sends inside any half-open stretch [t, t + length) starting at a send."""
    length = timedelta(seconds=length_s)
    return max((sum(1 for u in times if t <= u < t + length) for t in times), default=0)


def drive(budget: RateBudget, clock: FakeClock, sends: int) -> list[datetime]:
    """Send as fast as the budget allows, jumping the clock to each next slot."""
    times: list[datetime] = []
    while len(times) < sends:
        if budget.allowance() == 0:
            slot = budget.next_slot()
            assert slot > clock.now
            clock.now = slot
            continue
        budget.record()
        times.append(clock.now)
    return times


def test_a_fresh_budget_allows_the_smallest_window_limit_now() -> None:
    clock = FakeClock(T0)
    budget = RateBudget([Window(5, 1.0), Window(18, 60.0)], clock=clock)
    assert budget.allowance() == 5
    assert budget.next_slot() == T0


def test_each_send_uses_up_one_slot_of_every_window() -> None:
    clock = FakeClock(T0)
    budget = RateBudget([Window(3, 60.0)], clock=clock)
    budget.record()
    budget.record()
    assert budget.allowance() == 1
    budget.record()
    assert budget.allowance() == 0
    assert budget.next_slot() == T0 + timedelta(seconds=60)


def test_a_slot_reopens_exactly_one_window_after_the_oldest_send() -> None:
    clock = FakeClock(T0)
    budget = RateBudget([Window(2, 10.0)], clock=clock)
    budget.record()
    clock.advance(4)
    budget.record()
    assert budget.next_slot() == T0 + timedelta(seconds=10)
    clock.advance(5.999)
    assert budget.allowance() == 0
    clock.now = T0 + timedelta(seconds=10)
    assert budget.allowance() == 1
    assert budget.next_slot() == clock.now


def test_a_burst_never_exceeds_any_limit_in_any_sliding_window() -> None:
    clock = FakeClock(T0)
    budget = RateBudget([Window(4, 1.0), Window(20, 60.0)], clock=clock)
    times = drive(budget, clock, 100)
    assert sends_in_any_window(times, 1.0) <= 4
    assert sends_in_any_window(times, 60.0) <= 20
    assert times[-1] - times[0] < timedelta(minutes=5)  # and it does not idle needlessly


def test_a_token_bucket_would_allow_39_in_a_minute_but_this_budget_allows_20() -> None:
    clock = FakeClock(T0)
    budget = RateBudget([Window(20, 60.0)], clock=clock)
    times = drive(budget, clock, 20)
    clock.advance(59)  # a refilled bucket would let 19 more through now
    assert budget.allowance() == 0
    times += drive(budget, clock, 20)
    assert sends_in_any_window(times, 60.0) == 20


def test_the_next_slot_satisfies_every_window_at_once() -> None:
    clock = FakeClock(T0)
    budget = RateBudget([Window(1, 1.0), Window(2, 60.0)], clock=clock)
    budget.record()
    clock.advance(1)
    budget.record()
    assert budget.next_slot() == T0 + timedelta(seconds=60)


def test_a_pause_allows_nothing_until_it_ends_and_is_never_shortened() -> None:
    clock = FakeClock(T0)
    budget = RateBudget([Window(10, 60.0)], clock=clock)
    budget.pause(T0 + timedelta(seconds=600))
    budget.pause(T0 + timedelta(seconds=30))
    assert budget.allowance() == 0
    assert budget.next_slot() == T0 + timedelta(seconds=600)
    clock.advance(600)
    assert budget.allowance() == 10
    assert budget.paused_until is None


def test_a_budget_without_windows_is_unlimited_unless_paused() -> None:
    clock = FakeClock(T0)
    budget = RateBudget([], clock=clock)
    for _ in range(1000):
        budget.record()
    assert budget.allowance() == UNLIMITED
    budget.pause(T0 + timedelta(seconds=5))
    assert budget.allowance() == 0
    assert budget.next_slot() == T0 + timedelta(seconds=5)


def test_sends_recorded_out_of_order_count_like_any_other() -> None:
    clock = FakeClock(T0 + timedelta(seconds=30))
    budget = RateBudget([Window(2, 60.0)], clock=clock)
    budget.record(T0 + timedelta(seconds=20))
    budget.record(T0)
    assert budget.allowance() == 0
    assert budget.next_slot() == T0 + timedelta(seconds=60)


def test_sends_older_than_the_longest_window_are_forgotten() -> None:
    clock = FakeClock(T0)
    budget = RateBudget([Window(1, 1.0), Window(3, 60.0)], clock=clock)
    budget.record(T0 - timedelta(seconds=60))
    budget.record(T0 - timedelta(seconds=59))
    assert budget.allowance() == 1  # one minute-slot still taken, the other has left


def test_budget_for_pads_each_window_for_clock_differences() -> None:
    budget = budget_for(1, 18, FakeClock(T0))
    assert budget.windows == (Window(1, 1.1), Window(18, 61.0))
    assert padded(60.0) == 61.0
    assert budget_for(None, 18).windows == (Window(18, 61.0),)
    assert budget_for(None, None).windows == ()


@pytest.mark.parametrize(("limit", "length"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_a_window_without_room_or_length_is_refused(limit: int, length: float) -> None:
    with pytest.raises(ValueError, match="window"):
        Window(limit, length)


def test_its_repr_names_the_windows() -> None:
    assert repr(budget_for(4, 90)) == "RateBudget(4/1.1s, 90/61s)"
