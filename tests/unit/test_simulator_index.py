"""The simulator's indexed listing and its list knobs: `World.page`, `total_mode`, `list_order`.

A hypothesis property holds the indexed page to the naive filter-and-sort the world used to do,
over random worlds with adds, state changes, removals, hides and same-millisecond creations.
The HTTP tests run the real app on a real socket (`TestServer`, port 0).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import BaseTestServer, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.simulator import SimJob, World, make_app

PROJECT = "0123456789abcdef0123456789abcdef"
BATCHES = f"/v2.0/{PROJECT}/batches"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def naive(
    world: World,
    *,
    queue_name: str | None = None,
    cluster_name: str | None = None,
    state: str | None = None,
    job_name: str | None = None,
    job_id: str | None = None,
    owner: str | None = None,
) -> list[SimJob]:
    """The listing as the world computed it before it had indexes: scan, filter, stable sort."""
    wanted_state = state.strip().lower() if state else None
    matches = [
        job
        for job in reversed(world.jobs.values())
        if not world.is_hidden(job.id)
        and (queue_name is None or job.queue == queue_name)
        and (cluster_name is None or job.queue == cluster_name)
        and (wanted_state is None or job.state.strip().lower() == wanted_state)
        and (job_name is None or job.name == job_name)
        and (job_id is None or job.id == job_id)
        and (owner is None or job.owner == owner)
    ]
    matches.sort(key=lambda job: job.create_ms, reverse=True)
    return matches


def names(jobs: list[SimJob]) -> list[str]:
    return [job.name for job in jobs]


def add_jobs(world: World, count: int, *, queue: str = "etl", state: str = "running") -> None:
    """`count` jobs named {queue}{i} created one second apart ({queue}0 oldest)."""
    for i in range(count):
        created = T0 - timedelta(seconds=count - i)
        world.add_job(queue=queue, name=f"{queue}{i}", state=state, created=created)


# --- the property ----------------------------------------------------------------------------

QUEUES = ("a", "b", "c")
STATES = ("starting", "running", "Running", " RUNNING ", "success", "dead")

_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.sampled_from(QUEUES),
            st.sampled_from(STATES),
            st.integers(0, 4),
            st.sampled_from(("x", "y")),
            st.sampled_from(("n1", "n2")),
        ),
        st.tuples(st.just("set"), st.integers(0, 99), st.sampled_from(STATES)),
        st.tuples(st.sampled_from(("remove", "hide", "unhide")), st.integers(0, 99)),
    ),
    max_size=40,
)


def build(ops: list[tuple[Any, ...]]) -> World:
    """A world after these operations; picks index the jobs present, modulo their number."""
    world = World(clock=lambda: T0)
    for op in ops:
        if op[0] == "add":
            _, queue, state, second, owner, name = op
            created = T0 + timedelta(seconds=second)
            world.add_job(queue=queue, name=name, state=state, owner=owner, created=created)
            continue
        if not world.jobs:
            continue
        job_id = list(world.jobs)[op[1] % len(world.jobs)]
        if op[0] == "set":
            world.set_state(job_id, op[2])
        elif op[0] == "remove":
            world.remove_job(job_id)
        elif op[0] == "hide":
            world.hide_from_listing(job_id)
        else:
            world.unhide(job_id)
    return world


@settings(max_examples=300, deadline=None)
@given(
    ops=_ops,
    queue_name=st.sampled_from((None, "a", "b", "zz")),
    cluster_name=st.sampled_from((None, None, "a")),
    state=st.sampled_from((None, "running", "RUNNING", "success", "starting", "nope", "")),
    job_name=st.sampled_from((None, None, "n1")),
    owner=st.sampled_from((None, None, "y")),
    pick_id=st.one_of(st.none(), st.integers(0, 99)),
    offset=st.integers(0, 30),
    size=st.integers(0, 15),
    ascending=st.booleans(),
)
def test_an_indexed_page_equals_the_naive_filter_and_sort_on_any_world(
    ops: list[tuple[Any, ...]],
    queue_name: str | None,
    cluster_name: str | None,
    state: str | None,
    job_name: str | None,
    owner: str | None,
    pick_id: int | None,
    offset: int,
    size: int,
    ascending: bool,
) -> None:
    world = build(ops)
    job_id = None
    if pick_id is not None and world.jobs:
        job_id = list(world.jobs)[pick_id % len(world.jobs)]
    filters = {
        "queue_name": queue_name,
        "cluster_name": cluster_name,
        "state": state,
        "job_name": job_name,
        "job_id": job_id,
        "owner": owner,
    }
    expected = naive(world, **filters)
    if ascending:
        expected.reverse()
    page, total = world.page(offset=offset, size=size, ascending=ascending, **filters)
    assert page == expected[offset : offset + size]
    assert total == len(expected)
    assert world.listing(**filters) == naive(world, **filters)


# --- World.page ------------------------------------------------------------------------------


def test_jobs_created_in_the_same_millisecond_list_newest_added_first() -> None:
    world = World(clock=lambda: T0)
    for name in ("first", "second", "third"):
        world.add_job(queue="etl", name=name, state="running")
    world.add_job(queue="etl", name="older", state="running", created=T0 - timedelta(seconds=1))
    page, total = world.page(offset=0, size=10)
    assert names(page) == ["third", "second", "first", "older"]
    assert total == 4
    oldest_first, _ = world.page(offset=0, size=10, ascending=True)
    assert names(oldest_first) == ["older", "first", "second", "third"]


def test_a_removed_job_added_again_with_the_same_id_counts_as_newest_added() -> None:
    world = World(clock=lambda: T0)
    world.add_job(queue="etl", name="a", job_id="a")
    world.add_job(queue="etl", name="b", job_id="b")
    world.remove_job("a")
    world.add_job(queue="etl", name="a", job_id="a")
    assert names(world.page(offset=0, size=10)[0]) == ["a", "b"]


def test_set_state_moves_a_job_between_state_filters_whatever_its_case() -> None:
    world = World(clock=lambda: T0)
    add_jobs(world, 3)
    job = next(iter(world.jobs.values()))
    world.set_state(job.id, " Success ")
    running, running_total = world.page(offset=0, size=10, queue_name="etl", state="RUNNING")
    done, done_total = world.page(offset=0, size=10, state="success")
    assert (names(running), running_total) == (["etl2", "etl1"], 2)
    assert (names(done), done_total) == (["etl0"], 1)


def test_a_hidden_job_is_out_of_the_page_and_the_total_and_comes_back_in_its_new_state() -> None:
    world = World(clock=lambda: T0)
    add_jobs(world, 3)
    hidden = next(iter(world.jobs.values()))
    world.hide_from_listing(hidden.id)
    world.set_state(hidden.id, "dead")
    assert world.page(offset=0, size=10, state="running") == (
        [world.jobs[i] for i in list(world.jobs)[:0:-1]],
        2,
    )
    assert world.page(offset=0, size=10, state="dead") == ([], 0)
    world.unhide(hidden.id)
    world.unhide(hidden.id)
    assert world.page(offset=0, size=10, state="dead") == ([hidden], 1)
    assert world.page(offset=0, size=10)[1] == 3


def test_a_page_past_the_end_is_empty_but_the_total_still_counts() -> None:
    world = World(clock=lambda: T0)
    add_jobs(world, 5)
    assert world.page(offset=5, size=10) == ([], 5)
    assert world.page(offset=50, size=10, queue_name="etl", ascending=True) == ([], 5)
    assert world.page(offset=0, size=10, queue_name="nowhere") == ([], 0)


def test_queue_and_state_filters_combine_and_cluster_name_means_queue_name() -> None:
    world = World(clock=lambda: T0)
    add_jobs(world, 4, queue="etl")
    add_jobs(world, 3, queue="adhoc")
    add_jobs(world, 2, queue="etl", state="success")
    page, total = world.page(offset=1, size=2, queue_name="etl", state="running")
    assert (names(page), total) == (["etl2", "etl1"], 4)
    assert world.page(offset=0, size=10, cluster_name="adhoc")[1] == 3
    assert world.page(offset=0, size=10, queue_name="etl", cluster_name="etl")[1] == 6
    assert world.page(offset=0, size=10, queue_name="etl", cluster_name="adhoc") == ([], 0)


def test_paging_drift_keeps_the_indexes_right() -> None:
    world = World(clock=lambda: T0)
    add_jobs(world, 3)
    first = next(iter(world.jobs))
    world.faults.insert_during_paging({"queue": "etl", "name": "new", "state": "running"}, 1)
    world.faults.remove_during_paging(first, 1)
    world.apply_drift(1, "etl")
    page, total = world.page(offset=0, size=10, queue_name="etl", state="running")
    assert (names(page), total) == (["new", "etl2", "etl1"], 3)


def test_a_negative_offset_or_size_is_refused() -> None:
    with pytest.raises(ValueError, match="offset and size"):
        World().page(offset=-1, size=10)


def test_the_oldest_first_knob_serves_the_opposite_of_the_requested_order() -> None:
    world = World(clock=lambda: T0)
    add_jobs(world, 4)
    world.list_order = "oldest_first"
    assert names(world.page(offset=0, size=2)[0]) == ["etl0", "etl1"]
    assert names(world.page(offset=0, size=2, ascending=True)[0]) == ["etl3", "etl2"]
    assert names(world.listing()) == ["etl3", "etl2", "etl1", "etl0"]


def test_the_shuffled_knob_serves_each_pages_rows_in_a_seeded_different_order() -> None:
    world = World(clock=lambda: T0)
    add_jobs(world, 6)
    true_pages = [names(world.page(offset=o, size=3)[0]) for o in (0, 3)]
    world.list_order = "shuffled"
    shuffled = [names(world.page(offset=o, size=3, state="running")[0]) for o in (0, 3)]
    for truth, served in zip(true_pages, shuffled, strict=True):
        assert sorted(served) == sorted(truth)
        assert served != truth
    assert shuffled == [names(world.page(offset=o, size=3, state="running")[0]) for o in (0, 3)]
    world.shuffle_seed = 1
    reseeded = [names(world.page(offset=o, size=2)[0]) for o in range(0, 6, 2)]
    assert all(len(set(pair)) == 2 for pair in reseeded)


# --- over HTTP -------------------------------------------------------------------------------


@dataclass
class Client:
    """A plain client session pointed at a running simulator."""

    server: BaseTestServer
    session: aiohttp.ClientSession

    async def get(self, **params: str | int) -> tuple[int, Any]:
        """The status and JSON body of a list request with these query parameters."""
        query = {name: str(value) for name, value in params.items()}
        async with self.session.get(self.server.make_url(BATCHES), params=query) as resp:
            return resp.status, await resp.json()

    async def names(self, **params: str | int) -> list[str]:
        """The names of the listed sessions (the request must succeed)."""
        status, body = await self.get(**params)
        assert status == 200, body
        return [session["name"] for session in body["sessions"]]


@pytest.fixture
def world() -> World:
    return World(clock=lambda: T0)


@pytest.fixture
async def client(world: World) -> AsyncIterator[Client]:
    app = make_app(world, project_id=PROJECT)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        yield Client(server, session)


async def test_total_counts_every_match_by_default_and_only_the_page_in_page_mode(
    world: World, client: Client
) -> None:
    add_jobs(world, 25)
    assert (await client.get(**{"from": 20, "size": 10}))[1]["total"] == 25
    world.total_mode = "page"
    assert (await client.get(**{"from": 20, "size": 10}))[1]["total"] == 5
    assert (await client.get(**{"from": 0, "size": 10}))[1]["total"] == 10
    assert (await client.get(**{"from": 40, "size": 10}))[1]["total"] == 0


async def test_order_create_time_asc_lists_oldest_first_and_desc_is_the_default(
    world: World, client: Client
) -> None:
    add_jobs(world, 4)
    assert await client.names(order="CREATE_TIME_ASC", size=3) == ["etl0", "etl1", "etl2"]
    assert await client.names(order="CREATE_TIME_DESC", size=3) == ["etl3", "etl2", "etl1"]
    assert await client.names(order="", size=3) == await client.names(size=3)


async def test_an_unknown_order_is_a_dli_0001_parameter_error(world: World, client: Client) -> None:
    add_jobs(world, 2)
    status, body = await client.get(order="DURATION_DESC")
    assert status == 400
    assert body["error_code"] == "DLI.0001"
    assert "order" in body["error_msg"]


async def test_the_order_knobs_apply_to_filtered_and_unfiltered_listings_alike(
    world: World, client: Client
) -> None:
    add_jobs(world, 3, queue="etl")
    add_jobs(world, 3, queue="adhoc", state="success")
    world.list_order = "oldest_first"
    assert await client.names(queue_name="etl") == ["etl0", "etl1", "etl2"]
    assert await client.names(state="SUCCESS", order="CREATE_TIME_ASC") == [
        "adhoc2",
        "adhoc1",
        "adhoc0",
    ]
    world.list_order = "shuffled"
    filtered = await client.names(cluster_name="etl", state="running")
    assert sorted(filtered) == ["etl0", "etl1", "etl2"]
    assert filtered != ["etl2", "etl1", "etl0"]
    unfiltered = await client.names(size=3)
    truth = names(world.listing()[:3])
    assert sorted(unfiltered) == sorted(truth)
    assert unfiltered != truth


async def test_combined_filters_page_and_count_over_http(world: World, client: Client) -> None:
    add_jobs(world, 12, queue="etl")
    add_jobs(world, 5, queue="etl", state="dead")
    add_jobs(world, 7, queue="adhoc")
    status, body = await client.get(queue_name="etl", state="Running", **{"from": 10, "size": 5})
    assert status == 200
    assert [s["name"] for s in body["sessions"]] == ["etl1", "etl0"]
    assert body["total"] == 12
    status, past = await client.get(queue_name="adhoc", state="running", **{"from": 7})
    assert (status, past["sessions"], past["total"]) == (200, [], 7)
