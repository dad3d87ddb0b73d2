"""The DLI simulator: its HTTP API, the gateway rules (AK/SK), the fault plan and scenarios.

Every HTTP test runs the real aiohttp app on a real socket (`TestServer`, port 0) and talks to
it with a plain `aiohttp.ClientSession`; signed requests are signed with `dli.signer.sign`.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp.test_utils import TestServer

from monitor.dli.signer import canonical_query, sign
from monitor.redact import redact_text
from monitor.simulator import (
    Scenario,
    ScenarioDriver,
    ScenarioError,
    World,
    default_scenario,
    load_scenario,
    make_app,
    serve,
)
from monitor.simulator.scenario import parse_scenario

PROJECT = "0123456789abcdef0123456789abcdef"
AK = "AKSIMTEST00000000001"
SK = "sim-test-secret-key-0001"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
BATCHES = f"/v2.0/{PROJECT}/batches"


class SimClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class Answer:
    status: int
    text: str
    headers: Mapping[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Sim:
    """A running simulator and a client session pointed at it."""

    server: TestServer
    session: aiohttp.ClientSession
    clock: SimClock

    @property
    def host(self) -> str:
        return f"{self.server.host}:{self.server.port}"

    async def call(
        self,
        path: str,
        params: Sequence[tuple[str, str]] = (),
        *,
        method: str = "GET",
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send one request with the query exactly as canonicalised (as the SDK does)."""
        query = canonical_query(params)
        url = yarl.URL(
            str(self.server.make_url(path)) + (f"?{query}" if query else ""), encoded=True
        )
        async with self.session.request(method, url, headers=dict(headers or {})) as resp:
            return Answer(resp.status, await resp.text(), resp.headers)

    async def signed(
        self,
        path: str,
        params: Sequence[tuple[str, str]] = (),
        *,
        method: str = "GET",
        secret_key: str = SK,
        access_key: str = AK,
        moment: datetime | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send a request signed with `signer.sign` at `moment` (default: the sim clock)."""
        signed = sign(
            method=method,
            host=self.host,
            path=path,
            query=params,
            headers=dict(extra or {}),
            body=b"",
            access_key=access_key,
            secret_key=secret_key,
            moment=moment or self.clock(),
        )
        return await self.call(path, params, method=method, headers=signed.headers)

    async def page(self, offset: int, size: int, **filters: str) -> dict[str, Any]:
        params = [("from", str(offset)), ("size", str(size)), *filters.items()]
        answer = await self.call(BATCHES, params)
        assert answer.status == 200, answer.text
        body: dict[str, Any] = answer.json
        return body


@asynccontextmanager
async def running(world: World, clock: SimClock, **kwargs: Any) -> AsyncIterator[Sim]:
    app = make_app(world, project_id=PROJECT, clock=clock, **kwargs)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        yield Sim(server, session, clock)


@pytest.fixture
def sim_clock() -> SimClock:
    return SimClock()


@pytest.fixture
def world(sim_clock: SimClock) -> World:
    return World(clock=sim_clock)


@pytest.fixture
async def sim(world: World, sim_clock: SimClock) -> AsyncIterator[Sim]:
    async with running(world, sim_clock) as running_sim:
        yield running_sim


@pytest.fixture
async def aksk(world: World, sim_clock: SimClock) -> AsyncIterator[Sim]:
    async with running(world, sim_clock, auth="aksk", credentials={AK: SK}) as running_sim:
        yield running_sim


def add_jobs(world: World, count: int, *, queue: str = "etl", state: str = "running") -> list[str]:
    """`count` jobs named j0.. created one second apart (j0 oldest); returns their ids."""
    return [
        world.add_job(
            queue=queue, name=f"j{i}", state=state, created=T0 - timedelta(seconds=count - i)
        ).id
        for i in range(count)
    ]


# --- listing -------------------------------------------------------------------------------


async def test_listing_pages_newest_first_and_total_counts_every_matching_job(
    world: World, sim: Sim
) -> None:
    add_jobs(world, 25)
    body = await sim.page(10, 10)
    assert [s["name"] for s in body["sessions"]] == [f"j{i}" for i in range(14, 4, -1)]
    assert body["from"] == 10
    assert body["total"] == 25
    assert body["create_time"] == ms(T0)


async def test_the_last_page_is_short_and_a_page_past_the_end_is_empty(
    world: World, sim: Sim
) -> None:
    add_jobs(world, 25)
    assert [s["name"] for s in (await sim.page(20, 10))["sessions"]] == [
        "j4",
        "j3",
        "j2",
        "j1",
        "j0",
    ]
    past = await sim.page(40, 10)
    assert past["sessions"] == []
    assert past["total"] == 25


async def test_from_and_size_default_to_zero_and_one_hundred(world: World, sim: Sim) -> None:
    add_jobs(world, 120)
    body = (await sim.call(BATCHES)).json
    assert body["from"] == 0
    assert len(body["sessions"]) == 100
    assert body["sessions"][0]["name"] == "j119"


async def test_a_listed_session_carries_every_documented_field(world: World, sim: Sim) -> None:
    job = world.add_job(queue="etl", name="nightly", state="running", owner="bob")
    for i in range(15):
        world.set_state(job.id, "running", log_line=f"stdout: line {i}")
    (session,) = (await sim.page(0, 10))["sessions"]
    assert set(session) == {
        "id",
        "state",
        "appId",
        "name",
        "owner",
        "proxyUser",
        "kind",
        "log",
        "sc_type",
        "cluster_name",
        "queue",
        "create_time",
        "update_time",
        "duration",
        "image",
        "req_body",
    }
    assert session["log"] == [f"stdout: line {i}" for i in range(5, 15)]
    assert session["queue"] == session["cluster_name"] == "etl"
    assert (session["owner"], session["kind"], session["sc_type"]) == ("bob", "spark", "A")
    assert session["appId"].startswith("application_")
    assert "spark.hadoop.fs.obs.secret.key" in json.loads(session["req_body"])["conf"]
    assert "SIMULATED-SECRET" not in redact_text(session["req_body"])


async def test_set_state_bumps_update_time_and_duration(
    world: World, sim: Sim, sim_clock: SimClock
) -> None:
    job = world.add_job(queue="etl", name="x")
    sim_clock.advance(90)
    world.set_state(job.id, "dead", log_line="YARN Diagnostics: boom")
    (session,) = (await sim.page(0, 10))["sessions"]
    assert session["create_time"] == ms(T0)
    assert session["update_time"] == ms(T0) + 90_000
    assert session["duration"] == 90_000
    assert session["log"][-1] == "YARN Diagnostics: boom"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"queue_name": "etl"}, {"a", "b"}),
        ({"cluster_name": "adhoc"}, {"c"}),
        ({"state": "dead"}, {"b", "c"}),
        ({"state": "DEAD", "queue_name": "etl"}, {"b"}),
        ({"job_name": "a"}, {"a"}),
        ({"owner": "carol"}, {"c"}),
        ({"queue_name": "nope"}, set()),
    ],
)
async def test_filters_select_the_matching_jobs_and_total_follows(
    world: World, sim: Sim, filters: dict[str, str], expected: set[str]
) -> None:
    world.add_job(queue="etl", name="a", state="running")
    world.add_job(queue="etl", name="b", state="dead")
    world.add_job(queue="adhoc", name="c", state="dead", owner="carol")
    body = await sim.page(0, 10, **filters)
    assert {s["name"] for s in body["sessions"]} == expected
    assert body["total"] == len(expected)


async def test_the_job_id_filter_uses_the_hyphenated_wire_name(world: World, sim: Sim) -> None:
    ids = add_jobs(world, 3)
    body = await sim.page(0, 10, **{"job-id": ids[1]})
    assert [s["id"] for s in body["sessions"]] == [ids[1]]


async def test_a_hidden_job_leaves_the_listing_but_still_answers_state(
    world: World, sim: Sim
) -> None:
    ids = add_jobs(world, 2)
    world.hide_from_listing(ids[0])
    assert [s["id"] for s in (await sim.page(0, 10))["sessions"]] == [ids[1]]
    assert (await sim.call(f"{BATCHES}/{ids[0]}/state")).json == {"id": ids[0], "state": "running"}
    world.unhide(ids[0])
    assert (await sim.page(0, 10))["total"] == 2


@pytest.mark.parametrize(
    "params",
    [[("size", "abc")], [("from", "x")], [("size", "1001")], [("from", "-1")], [("size", "1.5")]],
)
async def test_a_bad_from_or_size_is_a_dli_0001_parameter_error(
    sim: Sim, params: list[tuple[str, str]]
) -> None:
    answer = await sim.call(BATCHES, params)
    assert answer.status == 400
    assert answer.json["error_code"] == "DLI.0001"


# --- per-job endpoints -----------------------------------------------------------------------


async def test_details_add_feature_and_spark_version_and_drop_duration(
    world: World, sim: Sim
) -> None:
    job = world.add_job(queue="etl", name="x", state="running")
    body = (await sim.call(f"{BATCHES}/{job.id}")).json
    assert body["id"] == job.id
    assert (body["feature"], body["spark_version"]) == ("basic", "3.3.1")
    assert "duration" not in body
    assert body["req_body"] == job.req_body


async def test_state_returns_the_raw_state_with_its_capitals(world: World, sim: Sim) -> None:
    job = world.add_job(queue="etl", name="x", state="running")
    world.set_state(job.id, "Success")
    assert (await sim.call(f"{BATCHES}/{job.id}/state")).json == {"id": job.id, "state": "Success"}


async def test_log_returns_a_window_of_the_log_lines(world: World, sim: Sim) -> None:
    job = world.add_job(queue="etl", name="x")
    body = (await sim.call(f"{BATCHES}/{job.id}/log")).json
    assert body == {"id": job.id, "from": 0, "total": 3, "log": job.log}
    window = (await sim.call(f"{BATCHES}/{job.id}/log", [("from", "1"), ("size", "1")])).json
    assert window["log"] == [job.log[1]]


@pytest.mark.parametrize("suffix", ["", "/state", "/log"])
async def test_an_unknown_or_removed_job_answers_400_dli_0002(
    world: World, sim: Sim, suffix: str
) -> None:
    job = world.add_job(queue="etl", name="x")
    world.remove_job(job.id)
    answer = await sim.call(f"{BATCHES}/{job.id}{suffix}")
    assert answer.status == 400
    assert answer.json == {
        "error_code": "DLI.0002",
        "error_msg": f"The job {job.id} does not exist.",
    }
    assert (await sim.page(0, 10))["total"] == 0


async def test_cancelling_an_active_job_kills_it_and_a_finished_one_is_refused(
    world: World, sim: Sim
) -> None:
    job = world.add_job(queue="etl", name="x", state="running")
    answer = await sim.call(f"{BATCHES}/{job.id}", method="DELETE")
    assert (answer.status, answer.json) == (200, {"msg": "deleted"})
    assert world.get(job.id).state == "dead"
    again = await sim.call(f"{BATCHES}/{job.id}", method="DELETE")
    assert (again.status, again.json["error_code"]) == (400, "DLI.0007")


# --- gateway behaviour ---------------------------------------------------------------------


async def test_every_response_carries_a_fresh_request_id(world: World, sim: Sim) -> None:
    answers = [
        await sim.call(BATCHES),
        await sim.call(f"{BATCHES}/nope/state"),
        await sim.call("/v2.0/other-project/batches"),
        await sim.call(BATCHES, [("size", "x")]),
    ]
    ids = [a.headers.get("X-Request-Id", "") for a in answers]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == 4


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v2.0/{PROJECT}/jobs"),
        ("GET", "/v2.0/wrongproject/batches"),
        ("GET", f"{BATCHES}/"),
        ("POST", f"{BATCHES}/some-id/state"),
    ],
)
async def test_an_unknown_route_answers_404_apig_0101_and_is_recorded(
    world: World, sim: Sim, method: str, path: str
) -> None:
    answer = await sim.call(path, method=method)
    assert answer.status == 404
    assert answer.json["error_code"] == "APIG.0101"
    assert answer.json["request_id"] == answer.headers["X-Request-Id"]
    (unknown,) = world.unknown_routes
    assert (unknown.method, unknown.path, unknown.status) == (method, path, 404)


async def test_requests_are_recorded_with_operation_query_and_status(
    world: World, sim: Sim
) -> None:
    job = world.add_job(queue="etl", name="x")
    await sim.page(0, 5, queue_name="etl")
    await sim.call(f"{BATCHES}/{job.id}/state")
    await sim.call(f"{BATCHES}/missing")
    got = [(r.operation, r.query, r.status) for r in world.requests]
    assert got == [
        ("list_batches", {"from": "0", "size": "5", "queue_name": "etl"}, 200),
        ("get_state", {}, 200),
        ("get_batch", {}, 400),
    ]
    assert len(world.calls("get_state")) == 1
    assert world.unknown_routes == []


# --- AK/SK -----------------------------------------------------------------------------------


async def test_a_request_signed_like_the_official_sdk_passes(world: World, aksk: Sim) -> None:
    name = "nightly etl/é+&=~x"
    world.add_job(queue="etl", name=name, state="running")
    world.add_job(queue="etl", name="other", state="running")
    sdk_headers = {
        "Content-Type": "application/json",
        "User-Agent": "huaweicloud-usdk-python/3.0",
        "X-Project-Id": PROJECT,
    }
    params = [("from", "0"), ("job_name", name), ("queue_name", "etl"), ("size", "10")]
    answer = await aksk.signed(BATCHES, params, extra=sdk_headers)
    assert answer.status == 200, answer.text
    assert [s["name"] for s in answer.json["sessions"]] == [name]


async def test_a_signed_state_call_without_a_query_passes(world: World, aksk: Sim) -> None:
    job = world.add_job(queue="etl", name="x")
    answer = await aksk.signed(f"{BATCHES}/{job.id}/state")
    assert answer.json == {"id": job.id, "state": "starting"}


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"secret_key": "not-the-secret"}, "verify aksk signature fail"),
        ({"access_key": "AKUNKNOWN00000000000"}, "ak not exist"),
    ],
)
async def test_a_bad_signature_gets_401_apig_0301_without_the_secret(
    world: World, aksk: Sim, kwargs: dict[str, str], reason: str
) -> None:
    answer = await aksk.signed(BATCHES, [("from", "0")], **kwargs)
    assert answer.status == 401
    assert answer.json["error_code"] == "APIG.0301"
    assert reason in answer.json["error_msg"]
    assert SK not in answer.text
    assert world.requests[-1].status == 401


async def test_an_unsigned_request_or_a_tampered_query_is_refused(aksk: Sim) -> None:
    assert (await aksk.call(BATCHES)).status == 401
    signed = sign(
        method="GET",
        host=aksk.host,
        path=BATCHES,
        query=[("size", "10")],
        headers={},
        body=b"",
        access_key=AK,
        secret_key=SK,
        moment=aksk.clock(),
    )
    tampered = await aksk.call(BATCHES, [("size", "1000")], headers=signed.headers)
    assert tampered.status == 401


async def test_five_failures_lock_the_access_key_for_five_minutes(
    aksk: Sim, sim_clock: SimClock
) -> None:
    for _ in range(5):
        answer = await aksk.signed(BATCHES, secret_key="wrong")
        assert "verify aksk signature fail" in answer.json["error_msg"]
    locked = await aksk.signed(BATCHES)  # the sixth, correctly signed, is refused
    assert locked.status == 401
    assert locked.json["error_code"] == "APIG.0301"
    assert locked.json["error_msg"] == "AK access failed to reach the limit,forbidden"
    sim_clock.advance(299)
    assert (await aksk.signed(BATCHES)).status == 401
    sim_clock.advance(2)
    assert (await aksk.signed(BATCHES)).status == 200


async def test_a_success_resets_the_failure_count(aksk: Sim) -> None:
    for _ in range(4):
        await aksk.signed(BATCHES, secret_key="wrong")
    assert (await aksk.signed(BATCHES)).status == 200
    for _ in range(4):
        await aksk.signed(BATCHES, secret_key="wrong")
    assert (await aksk.signed(BATCHES)).status == 200


@pytest.mark.parametrize(("skew", "status"), [(-16, 401), (16, 401), (-14, 200), (14, 200)])
async def test_an_x_sdk_date_more_than_15_minutes_off_is_expired(
    aksk: Sim, skew: int, status: int
) -> None:
    answer = await aksk.signed(BATCHES, moment=T0 + timedelta(minutes=skew))
    assert answer.status == status
    if status == 401:
        assert answer.json["error_code"] == "APIG.0303"
        assert "signature expired" in answer.json["error_msg"]


async def test_auth_none_accepts_any_token(world: World, sim: Sim) -> None:
    answer = await sim.call(BATCHES, headers={"X-Auth-Token": "whatever"})
    assert answer.status == 200


def test_aksk_without_credentials_is_a_configuration_error(world: World) -> None:
    with pytest.raises(ValueError, match="credentials"):
        make_app(world, project_id=PROJECT, auth="aksk")


async def test_serve_listens_on_a_free_port_until_cleaned_up(world: World) -> None:
    world.add_job(queue="etl", name="x")
    runner = await serve(world, "127.0.0.1", 0, project_id=PROJECT)
    try:
        host, port = runner.addresses[0][:2]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{host}:{port}{BATCHES}") as resp,
        ):
            assert (await resp.json())["total"] == 1
    finally:
        await runner.cleanup()


# --- faults ----------------------------------------------------------------------------------


async def test_a_500_at_one_offset_hits_only_that_page_and_only_count_times(
    world: World, sim: Sim
) -> None:
    add_jobs(world, 45)
    world.faults.fail("list_batches", status=500, count=2, at_offset=20)
    statuses = [(await sim.call(BATCHES, [("from", str(o))])).status for o in (0, 10, 20, 30)]
    assert statuses == [200, 200, 500, 200]
    assert (await sim.call(BATCHES, [("from", "20")])).status == 500
    assert (await sim.call(BATCHES, [("from", "20")])).status == 200
    assert world.faults.armed == 0


async def test_a_failure_can_carry_its_own_body_and_target_one_queue(
    world: World, sim: Sim
) -> None:
    world.faults.fail("list_batches", status=503, body='{"oops": 1}', queue="etl")
    other = await sim.call(BATCHES, [("queue_name", "adhoc")])
    hit = await sim.call(BATCHES, [("queue_name", "etl")])
    assert (other.status, hit.status, hit.text) == (200, 503, '{"oops": 1}')


async def test_a_state_fault_matches_the_job_queue_and_any_matches_every_operation(
    world: World, sim: Sim
) -> None:
    etl = world.add_job(queue="etl", name="x")
    adhoc = world.add_job(queue="adhoc", name="y")
    world.faults.fail("get_state", queue="adhoc")
    assert (await sim.call(f"{BATCHES}/{etl.id}/state")).status == 200
    assert (await sim.call(f"{BATCHES}/{adhoc.id}/state")).status == 500
    world.faults.fail("any", status=502, count=2)
    assert (await sim.call(f"{BATCHES}/{etl.id}")).status == 502
    assert (await sim.call(BATCHES)).status == 502
    assert (await sim.call(BATCHES)).status == 200


async def test_a_rate_limit_answers_429_with_retry_after_and_apig_0308(
    world: World, sim: Sim
) -> None:
    world.faults.rate_limit("list_batches", retry_after=3)
    answer = await sim.call(BATCHES)
    assert answer.status == 429
    assert answer.headers["Retry-After"] == "3"
    assert answer.json["error_code"] == "APIG.0308"
    assert answer.json["request_id"] == answer.headers["X-Request-Id"]
    assert (await sim.call(BATCHES)).status == 200


async def test_a_malformed_body_is_served_with_200(world: World, sim: Sim) -> None:
    world.faults.malformed("list_batches", body="<html>gateway</html>")
    answer = await sim.call(BATCHES)
    assert (answer.status, answer.text) == (200, "<html>gateway</html>")
    assert (await sim.call(BATCHES)).json["total"] == 0


async def test_a_delay_holds_the_response_then_answers_normally(world: World, sim: Sim) -> None:
    world.faults.delay("list_batches", 0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await sim.call(BATCHES)
    assert loop.time() - started >= 0.05
    assert answer.status == 200


async def test_a_reset_drops_the_connection_and_aiohttp_resends_a_get_once(
    world: World, sim: Sim
) -> None:
    """aiohttp (3.14) re-sends an idempotent request once after a dropped connection."""
    world.faults.reset("list_batches", count=3)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await sim.call(BATCHES)
    assert [call.status for call in world.calls("list_batches")] == [502, 502]
    assert (await sim.call(BATCHES)).status == 200  # the third reset, then the re-send
    assert [call.status for call in world.calls("list_batches")][2:] == [502, 200]
    assert world.faults.armed == 0


async def test_the_daemon_client_calls_a_reset_a_connection_failure(world: World, sim: Sim) -> None:
    from monitor.dli.auth import NoAuth
    from monitor.dli.client import DliClient, RetryPolicy
    from monitor.dli.errors import DliTransportError
    from monitor.poll.reasons import reason

    seen: list[str] = []
    client = DliClient(
        sim.session,
        endpoint=str(sim.server.make_url("")).rstrip("/"),
        project_id=PROJECT,
        auth=NoAuth(),
        retry=RetryPolicy(attempts=2, backoff=(0,)),
        observer=lambda operation, code: seen.append(code),
    )
    world.faults.reset("any", count=2)  # one attempt (aiohttp's own re-send included)
    assert (await client.list_batches(offset=0, size=10)).rows == ()
    world.faults.reset("any", count=4)
    with pytest.raises(DliTransportError) as caught:
        await client.list_batches(offset=0, size=10)
    assert seen == ["connection_reset", "200", "connection_reset", "connection_reset"]
    assert caught.value.error_code == "connection_reset"
    assert reason(caught.value) == "connection"


def test_a_fault_for_an_unknown_operation_is_refused(world: World) -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        world.faults.fail("list_batch")
    with pytest.raises(ValueError, match="count"):
        world.faults.fail("get_state", count=0)


async def test_a_job_inserted_while_paging_makes_a_naive_pager_see_a_duplicate(
    world: World, sim: Sim
) -> None:
    add_jobs(world, 25)
    world.faults.insert_during_paging({"queue": "etl", "name": "newcomer"}, after_offset=10)
    pages = [await sim.page(offset, 10) for offset in (0, 10, 20)]
    names = [s["name"] for page in pages for s in page["sessions"]]
    assert [name for name, n in Counter(names).items() if n > 1] == ["j15"]
    assert "newcomer" not in names
    assert [page["total"] for page in pages] == [25, 26, 26]
    assert (await sim.page(0, 1))["sessions"][0]["name"] == "newcomer"


async def test_a_job_removed_while_paging_makes_a_naive_pager_skip_one(
    world: World, sim: Sim
) -> None:
    ids = add_jobs(world, 25)
    world.faults.remove_during_paging(ids[-1], after_offset=10)
    names = [s["name"] for offset in (0, 10, 20) for s in (await sim.page(offset, 10))["sessions"]]
    assert len(names) == len(set(names)) == 24
    assert "j14" not in names


# --- scenarios -------------------------------------------------------------------------------

ONE_LIFECYCLE = {
    "queues": ["etl"],
    "lifecycles": [
        {
            "name": "etl",
            "queue": "etl",
            "every": "20s",
            "path": ["starting 4s", "running 10s", "success"],
        }
    ],
}


def states(world: World) -> list[tuple[str, str]]:
    """(name, state) of every job, oldest first."""
    jobs = sorted(world.jobs.values(), key=lambda j: j.create_ms)
    return [(job.name, job.state) for job in jobs]


def test_the_driver_applies_each_transition_when_it_is_due() -> None:
    world = World(clock=lambda: T0)
    driver = ScenarioDriver(world, parse_scenario(ONE_LIFECYCLE))
    driver.advance(T0)
    assert states(world) == [("etl", "starting")]
    driver.advance(T0 + timedelta(seconds=3.9))
    assert states(world) == [("etl", "starting")]
    driver.advance(T0 + timedelta(seconds=4))
    (job,) = world.jobs.values()
    assert (job.state, job.update_ms) == ("running", ms(T0) + 4000)
    driver.advance(T0 + timedelta(seconds=19))
    assert (job.state, job.update_ms) == ("success", ms(T0) + 14000)
    driver.advance(T0 + timedelta(seconds=20))
    assert states(world) == [("etl", "success"), ("etl", "starting")]


def test_one_big_leap_and_many_small_steps_build_the_same_world() -> None:
    def snapshot(world: World) -> list[tuple[object, ...]]:
        jobs = sorted(world.jobs.values(), key=lambda j: (j.create_ms, j.name))
        return [(j.name, j.queue, j.state, j.create_ms, j.update_ms, tuple(j.log)) for j in jobs]

    leap, steps = World(clock=lambda: T0), World(clock=lambda: T0)
    leap_driver = ScenarioDriver(leap, default_scenario())
    leap_driver.advance(T0)
    leap_driver.advance(T0 + timedelta(seconds=300))
    step_driver = ScenarioDriver(steps, default_scenario())
    for tenths in range(0, 3001, 7):
        step_driver.advance(T0 + timedelta(seconds=tenths / 10))
    step_driver.advance(T0 + timedelta(seconds=300))
    assert snapshot(leap) == snapshot(steps)
    assert len(steps.jobs) > 20


def test_history_jobs_exist_before_anything_is_submitted() -> None:
    scenario = parse_scenario(
        {"queues": ["etl"], "jobs": [{"name": "old", "queue": "etl", "state": "dead", "count": 3}]}
    )
    world = World(clock=lambda: T0)
    ScenarioDriver(world, scenario).advance(T0)
    assert states(world) == [("old", "dead")] * 3
    assert all(job.create_ms < ms(T0) and job.update_ms < ms(T0) for job in world.jobs.values())


def test_a_dead_job_ends_with_a_realistic_line_and_a_password_to_redact() -> None:
    scenario = parse_scenario(
        {
            "queues": ["adhoc"],
            "lifecycles": [
                {"name": "flaky", "queue": "adhoc", "every": "1h", "path": ["running 5s", "dead"]}
            ],
        }
    )
    world = World(clock=lambda: T0)
    driver = ScenarioDriver(world, scenario)
    driver.advance(T0)
    driver.advance(T0 + timedelta(seconds=5))
    (job,) = world.jobs.values()
    assert job.state == "dead"
    assert "java.lang.OutOfMemoryError" in job.log[-1]
    leaky = [line for line in job.log if "password=hunter2" in line]
    assert leaky
    assert "hunter2" not in redact_text(leaky[0])


def test_the_demo_scenario_is_lively() -> None:
    scenario = default_scenario()
    assert isinstance(scenario, Scenario)
    assert len(scenario.queues) >= 2
    world = World(clock=lambda: T0)
    driver = ScenarioDriver(world, scenario)
    seen: set[str] = set()
    for second in range(0, 600, 2):
        driver.advance(T0 + timedelta(seconds=second))
        seen |= {job.state for job in world.jobs.values()}
    assert {"starting", "running", "recovering", "success", "dead"} <= seen
    stuck = [j for j in world.jobs.values() if j.name == "stuck_job"]
    assert stuck[0].state == "starting"
    assert len({job.queue for job in world.jobs.values()}) >= 2


async def test_run_advances_every_tick_until_stopped() -> None:
    clock = SimClock()
    world = World(clock=clock)
    driver = ScenarioDriver(world, parse_scenario({**ONE_LIFECYCLE, "tick": "5s"}))
    stop = asyncio.Event()
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)
        if len(slept) == 3:
            stop.set()

    await asyncio.wait_for(driver.run(stop, sleep=fake_sleep), timeout=1)
    assert slept == [5.0, 5.0, 5.0]
    (job,) = world.jobs.values()
    assert job.state == "running"  # advanced at 0, 5 and 10 s: running since 4 s


def test_load_scenario_reads_yaml_and_lists_every_problem(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "queues: [etl]\ntick: 500ms\nlifecycles:\n"
        "  - {name: a, queue: etl, every: 1m, path: [starting 1h, dead]}\n"
    )
    scenario = load_scenario(good)
    assert scenario.tick == 0.5
    assert scenario.lifecycles[0].every == 60
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "queues: [etl]\ntick: soon\nlifecycles:\n"
        "  - {name: a, queue: etl, every: 1m, path: [starting 1h, dead 2s]}\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(bad)
    message = str(caught.value)
    assert "tick" in message
    assert "lifecycles.0" in message
    assert "final" in message


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"queues": ["etl"], "jobs": [{"name": "a", "queue": "ml", "state": "dead"}]}, "'ml'"),
        ({"queues": ["etl"], "surprise": 1}, "surprise"),
        ({"queues": []}, "queues"),
        ("just text", "(top level)"),
    ],
)
def test_an_invalid_scenario_says_where_the_problem_is(data: object, needle: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(data)
    assert needle in str(caught.value)


def test_a_missing_scenario_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "nope.yaml")
