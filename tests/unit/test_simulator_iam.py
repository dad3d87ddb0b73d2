"""The simulator's IAM token mode: issuing, checking and revoking tokens on a real socket.

The token requests are built by the daemon's own `IamTokenAuth` where it matters (the body
shape must be the one the daemon sends); the last tests run `IamTokenAuth` + `DliClient`
against the simulator through a revocation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from monitor.dli.auth import IamTokenAuth
from monitor.dli.client import DliClient, RetryPolicy
from monitor.dli.errors import DliAuthError
from monitor.simulator import World, make_app

PROJECT = "0123456789abcdef0123456789abcdef"
DOMAIN, USER, PASSWORD = "acme", "poller", "CANARY-sim-iam-pw"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
BATCHES = f"/v2.0/{PROJECT}/batches"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Sim:
    server: TestServer
    session: aiohttp.ClientSession
    world: World

    @property
    def endpoint(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def login(self, password: str = PASSWORD, domain: str = DOMAIN) -> aiohttp.ClientResponse:
        body = login_body(password=password, domain=domain)
        async with self.session.post(self.server.make_url("/v3/auth/tokens"), json=body) as resp:
            await resp.read()
            return resp

    async def token(self) -> str:
        resp = await self.login()
        assert resp.status == 201
        return resp.headers["X-Subject-Token"]

    async def list(self, token: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"X-Auth-Token": token} if token is not None else {}
        async with self.session.get(self.server.make_url(BATCHES), headers=headers) as resp:
            return resp.status, json.loads(await resp.read())


def login_body(*, password: str = PASSWORD, domain: str = DOMAIN) -> dict[str, Any]:
    """The body `IamTokenAuth` sends (taken from it, so the shapes cannot drift apart)."""
    auth = IamTokenAuth(
        None,  # type: ignore[arg-type]  # the session is not used to build the body
        iam_endpoint="http://unused",
        domain_name=domain,
        username=USER,
        password=password,
        project_id=PROJECT,
    )
    body: dict[str, Any] = json.loads(auth._request_body())
    return body


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[Sim]:
    world = World(clock=clock)
    world.add_job(queue="etl", name="j0", state="running", created=T0 - timedelta(minutes=5))
    credentials = {f"{DOMAIN}/{USER}": PASSWORD}
    app = make_app(world, project_id=PROJECT, auth="token", credentials=credentials, clock=clock)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        yield Sim(server, session, world)


async def test_a_token_is_issued_with_201_and_opens_the_api(sim: Sim, clock: Clock) -> None:
    resp = await sim.login()
    assert resp.status == 201
    token = resp.headers["X-Subject-Token"]
    assert token.startswith("MII")
    status, body = await sim.list(token)
    assert status == 200
    assert body["total"] == 1


async def test_the_answer_carries_expires_at_24_hours_on(sim: Sim) -> None:
    body = login_body()
    async with sim.session.post(sim.server.make_url("/v3/auth/tokens"), json=body) as resp:
        answer = await resp.json()
    assert answer["token"]["expires_at"] == "2026-03-02T12:00:00.000000Z"
    assert answer["token"]["issued_at"] == "2026-03-01T12:00:00.000000Z"


async def test_a_wrong_password_or_domain_gets_401_from_iam_and_no_token(sim: Sim) -> None:
    for resp in (await sim.login(password="wrong"), await sim.login(domain="other")):
        assert resp.status == 401
        assert "X-Subject-Token" not in resp.headers
    assert sim.world.calls("iam_token")[-1].status == 401


async def test_a_malformed_token_request_gets_400(sim: Sim) -> None:
    url = sim.server.make_url("/v3/auth/tokens")
    async with sim.session.post(url, json={"auth": {"identity": {}}}) as resp:
        assert resp.status == 400


async def test_a_missing_or_unknown_token_gets_401_apig_0301(sim: Sim) -> None:
    status, body = await sim.list(None)
    assert (status, body["error_code"]) == (401, "APIG.0301")
    assert "x-auth-token not found" in body["error_msg"]
    status, body = await sim.list("MIInot-a-token")
    assert (status, body["error_code"]) == (401, "APIG.0301")
    assert "decrypt token fail" in body["error_msg"]


async def test_an_expired_token_gets_401_saying_when_it_expired(sim: Sim, clock: Clock) -> None:
    token = await sim.token()
    clock.now += timedelta(hours=24)
    status, body = await sim.list(token)
    assert (status, body["error_code"]) == (401, "APIG.0301")
    assert "token expires, expires_at: 2026-03-02T12:00:00" in body["error_msg"]


async def test_revoking_fails_every_token_issued_so_far_and_a_new_one_works(sim: Sim) -> None:
    first, second = await sim.token(), await sim.token()
    sim.world.faults.revoke_tokens()
    for token in (first, second):
        status, body = await sim.list(token)
        assert (status, body["error_code"], body["error_msg"]) == (
            401,
            "APIG.0307",
            "The token must be updated.",
        )
        assert body["request_id"]
    fresh = await sim.token()
    assert (await sim.list(fresh))[0] == 200
    sim.world.faults.clear()  # disarming the fault plan does not bring revoked tokens back
    assert (await sim.list(first))[0] == 401


async def test_dli_faults_do_not_touch_the_iam_endpoint(sim: Sim) -> None:
    sim.world.faults.fail("any", status=503, count=1)
    token = await sim.token()
    assert (await sim.list(token))[0] == 503


def test_token_mode_needs_domain_slash_user_credentials() -> None:
    world = World()
    with pytest.raises(ValueError, match="credentials"):
        make_app(world, project_id=PROJECT, auth="token")
    with pytest.raises(ValueError, match="domain/user"):
        make_app(world, project_id=PROJECT, auth="token", credentials={"poller": "pw"})


async def daemon_client(sim: Sim, clock: Clock) -> tuple[DliClient, IamTokenAuth]:
    auth = IamTokenAuth(
        sim.session,
        iam_endpoint=sim.endpoint,
        domain_name=DOMAIN,
        username=USER,
        password=PASSWORD,
        project_id=PROJECT,
        clock=clock,
    )
    client = DliClient(
        sim.session,
        endpoint=sim.endpoint,
        project_id=PROJECT,
        auth=auth,
        retry=RetryPolicy(attempts=2, backoff=(0,)),
        clock=clock,
    )
    return client, auth


async def test_the_daemon_recovers_from_a_revocation_with_one_refresh(
    sim: Sim, clock: Clock
) -> None:
    client, _auth = await daemon_client(sim, clock)
    assert len((await client.list_batches(offset=0, size=10)).rows) == 1
    sim.world.faults.revoke_tokens()
    clock.now += timedelta(seconds=5)  # mid-cycle: the cached token is far from its refresh
    page = await client.list_batches(offset=0, size=10)
    assert len(page.rows) == 1
    logins = [call.status for call in sim.world.calls("iam_token")]
    assert logins == [201, 201]  # the first token, and exactly one refresh
    lists = [call.status for call in sim.world.calls("list_batches")]
    assert lists == [200, 401, 200]


async def test_a_second_revocation_within_a_minute_is_not_retried_by_the_daemon(
    sim: Sim, clock: Clock
) -> None:
    """The daemon forces a new token at most once a minute (`REAUTH_INTERVAL`): documented."""
    client, _auth = await daemon_client(sim, clock)
    await client.list_batches(offset=0, size=10)
    sim.world.faults.revoke_tokens()
    await client.list_batches(offset=0, size=10)
    sim.world.faults.revoke_tokens()
    clock.now += timedelta(seconds=30)
    with pytest.raises(DliAuthError):
        await client.list_batches(offset=0, size=10)
    clock.now += timedelta(seconds=31)
    assert len((await client.list_batches(offset=0, size=10)).rows) == 1
