"""The pure parts of incremental polling: the planner, the ended index, the reconciliation
cursor, and how `total` is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.models import Job, JobState
from monitor.poll.listing import ListingIncomplete, check_total
from monitor.poll.plan import EndedIndex, Planner, pages, plan_ended
from monitor.poll.reconcile import OVERLAP_ROWS, Reconciler

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def job(job_id: str, state: JobState, *, queue: str = "etl", minutes: float = 0) -> Job:
    return Job(id=job_id, state=state, queue=queue, create_time=T0 + timedelta(minutes=minutes))


@pytest.mark.parametrize(("count", "expected"), [(0, 1), (99, 1), (100, 2), (250, 3)])
def test_a_listing_costs_one_page_more_than_its_full_pages(count: int, expected: int) -> None:
    assert pages(count, 100) == expected


def test_many_queues_with_few_active_jobs_are_listed_project_wide() -> None:
    planner = Planner(page_size=100, interval_s=30, max_per_minute=60)
    queues = [f"q{i}" for i in range(50)]
    active = [job(f"{q}-{i}", JobState.RUNNING, queue=q) for q in queues for i in range(10)]
    planner.learn(active, [], queues=None)
    assert planner.project_wide(queues)


def test_one_quiet_queue_of_a_busy_project_is_listed_on_its_own() -> None:
    planner = Planner(page_size=100, interval_s=30, max_per_minute=60)
    busy = [job(f"b{i}", JobState.RUNNING, queue="busy") for i in range(900)]
    planner.learn([*busy, job("mine", JobState.RUNNING, queue="mine")], [], queues=None)
    assert not planner.project_wide(["mine"])
    assert planner.project_wide(None)  # the whole project has no cheaper way


def test_the_interval_stretches_to_what_the_budget_carries_and_comes_back() -> None:
    planner = Planner(page_size=100, interval_s=10, max_per_minute=60)
    assert planner.allowance() == 10
    assert planner.record_core(30)  # 30 requests at 1/s need 30 s
    assert planner.effective_interval_s == 30
    assert planner.allowance() == 30
    for _ in range(3):  # the last three cycles count: shrinking waits for them
        planner.record_core(4)
    assert planner.effective_interval_s == 10


def test_without_a_budget_nothing_stretches() -> None:
    planner = Planner(page_size=100, interval_s=10, max_per_minute=0)
    assert not planner.record_core(10_000)
    assert planner.effective_interval_s == 10
    assert planner.allowance() == float("inf")


def test_the_ended_index_counts_ended_jobs_created_since_a_moment() -> None:
    index = EndedIndex()
    index.cover_from(T0)
    index.add([job(f"d{i}", JobState.DEAD, minutes=i) for i in range(10)])
    index.add([job(f"s{i}", JobState.SUCCESS, minutes=i) for i in range(30)])
    index.add([job("d0", JobState.DEAD)])  # seen twice, counted once
    index.add([job("r", JobState.RUNNING, minutes=1)])  # not ended, but created
    now = T0 + timedelta(minutes=1)
    assert index.rows_since(T0 + timedelta(minutes=5), JobState.DEAD, now) == 5
    assert index.rows_since(T0, JobState.SUCCESS, now) == 30
    assert index.rows_since(T0 - timedelta(minutes=1), JobState.DEAD, T0) is None  # no rate yet


def test_before_its_coverage_the_index_extrapolates_the_creation_rate() -> None:
    index = EndedIndex()
    index.cover_from(T0)
    index.add([job(f"s{i}", JobState.SUCCESS, minutes=i + 0.5) for i in range(30)])
    index.add([job(f"d{i}", JobState.DEAD, minutes=i + 0.5) for i in range(10)])
    now = T0 + timedelta(minutes=40)  # 40 ended jobs in 40 minutes: one a minute, 3/4 success
    rows = index.rows_since(T0 - timedelta(minutes=20), JobState.SUCCESS, now)
    assert rows == pytest.approx(30 + 20 * 0.75)


def test_young_jobs_are_found_by_walking_and_old_ones_asked_one_by_one() -> None:
    index = EndedIndex()
    index.cover_from(T0)
    index.add([job(f"s{i}", JobState.SUCCESS, minutes=i / 10) for i in range(150)])
    now = T0 + timedelta(minutes=15)
    young = [job(f"y{i}", JobState.RUNNING, minutes=14) for i in range(100)]
    old = [job("old", JobState.RUNNING, minutes=-60 * 24 * 3)]  # three days before coverage
    plan = plan_ended(index, [*young, *old], 100, now)
    assert plan.floor == T0 + timedelta(minutes=14)
    assert plan.pages + plan.state_calls == 5  # e.g. 2 + 2 pages down to all young, 1 call
    assert plan.state_calls <= 2


def test_a_few_jobs_that_ended_are_asked_about_directly() -> None:
    index = EndedIndex()
    index.cover_from(T0)
    index.add([job(f"s{i}", JobState.SUCCESS, minutes=i / 10) for i in range(150)])
    now = T0 + timedelta(minutes=15)
    plan = plan_ended(index, [job("a", JobState.RUNNING, minutes=1)], 100, now)
    assert plan.floor is None and plan.state_calls == 1


def test_reconciliation_is_paced_to_finish_a_pass_per_period() -> None:
    reconciler = Reconciler(full_resync_s=3600, page_size=100, estimated_rows=100_000)
    due = []
    for _ in range(4):
        due.append(reconciler.pages_due(30.0))
        reconciler.spent(due[-1])
    assert due == [8, 8, 9, 8]  # 1001 pages over 120 cycles: about 8.3 a cycle


def test_pages_the_budget_did_not_allow_stay_due_but_do_not_pile_up() -> None:
    reconciler = Reconciler(full_resync_s=3600, page_size=100, estimated_rows=100_000)
    for _ in range(10):
        reconciler.pages_due(30.0)
        reconciler.spent(0)
    assert reconciler.pages_due(30.0) == 10


def test_reconciliation_rides_on_offsets_moved_by_new_jobs() -> None:
    reconciler = Reconciler(full_resync_s=60, page_size=100)
    assert reconciler.advance(100, at=0.0) is None
    assert reconciler.offset == 100 - OVERLAP_ROWS
    reconciler.shift(7)
    assert reconciler.offset == 100 - OVERLAP_ROWS + 7
    report = reconciler.advance(40, at=12.0)
    assert report is not None and (report.pages, report.rows, report.seconds) == (2, 140, 12.0)
    assert reconciler.offset == 0 and reconciler.estimated_rows == 140


@pytest.mark.parametrize(
    ("pages_seen", "distinct", "duplicates"),
    [
        ([(250, 100), (250, 100), (250, 50)], 250, 0),  # a count of every matching job
        ([(100, 100), (100, 100), (50, 50)], 250, 0),  # each page's own length
        ([(100, 100), (100, 100), (0, 0)], 200, 0),  # page lengths, an empty last page
        ([(None, 100), (None, 20)], 120, 0),  # no total at all
        ([(30, 30)], 30, 0),  # one page either way
    ],
)
def test_total_is_believed_only_where_it_means_something(
    pages_seen: list[tuple[int | None, int]], distinct: int, duplicates: int
) -> None:
    check_total(pages_seen, distinct, duplicates)


@pytest.mark.parametrize(
    ("pages_seen", "distinct", "duplicates"),
    [
        ([(250, 100), (251, 100), (251, 51)], 251, 0),  # the count moved while paging
        ([(250, 100), (250, 100), (250, 49)], 249, 0),  # a job fell between pages
        ([(None, 100), (None, 20)], 119, 1),  # shifted: a duplicate and no total
        ([(100, 100), (100, 100), (40, 40)], 239, 1),  # page lengths, but a duplicate
    ],
)
def test_an_inconsistent_total_makes_the_listing_incomplete(
    pages_seen: list[tuple[int | None, int]], distinct: int, duplicates: int
) -> None:
    with pytest.raises(ListingIncomplete):
        check_total(pages_seen, distinct, duplicates)
