"""IAM token authentication against a fake IAM on a real socket, plus the simple authenticators."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from monitor.dli.auth import AkSkAuth, IamTokenAuth, NoAuth
from monitor.dli.errors import DliAuthError

PASSWORD = "CANARY-PW-123"
PROJECT = "0123456789abcdef0123456789abcdef"
URL = yarl.URL("http://dli.example.com/v2.0/p/batches")


class FakeClock:
    """Wall-clock time that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeIam:
    """`POST /v3/auth/tokens`: issues token-1, token-2, ... valid for `lifetime`, or fails."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.lifetime = timedelta(hours=24)
        self.requests: list[dict[str, Any]] = []
        self.failure: tuple[int, dict[str, Any]] | None = None
        self.omit_token_header = False

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {
                "query": dict(request.query),
                "content_type": request.headers.get("Content-Type"),
                "body": await request.json(),
            }
        )
        if self.failure is not None:
            status, body = self.failure
            return web.json_response(body, status=status, headers={"X-Request-Id": "iam-req-1"})
        expires = (self.clock() + self.lifetime).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        headers = (
            {} if self.omit_token_header else {"X-Subject-Token": f"token-{len(self.requests)}"}
        )
        return web.json_response(
            {"token": {"expires_at": expires, "methods": ["password"]}},
            status=201,
            headers=headers,
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def iam(clock: FakeClock) -> AsyncIterator[tuple[FakeIam, str]]:
    fake = FakeIam(clock)
    app = web.Application()
    app.router.add_post("/v3/auth/tokens", fake.handle)
    async with TestServer(app) as server:
        yield fake, str(server.make_url(""))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _token_auth(
    session: aiohttp.ClientSession, endpoint: str, clock: FakeClock, **kw: Any
) -> IamTokenAuth:
    return IamTokenAuth(
        session,
        iam_endpoint=endpoint,
        domain_name="acme",
        username="poller",
        password=PASSWORD,
        project_id=PROJECT,
        clock=clock,
        **kw,
    )


async def test_the_token_request_is_a_project_scoped_password_request(
    session: aiohttp.ClientSession, iam: tuple[FakeIam, str], clock: FakeClock
) -> None:
    fake, endpoint = iam
    auth = _token_auth(session, endpoint, clock)
    headers = await auth.headers("GET", URL, {"X-Project-Id": PROJECT}, b"")
    assert headers == {"X-Project-Id": PROJECT, "X-Auth-Token": "token-1"}
    [request] = fake.requests
    assert request["query"] == {"nocatalog": "true"}
    assert request["content_type"] == "application/json;charset=utf8"
    assert request["body"] == {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": "poller", "password": PASSWORD, "domain": {"name": "acme"}}
                },
            },
            "scope": {"project": {"id": PROJECT}},
        }
    }


async def test_the_token_is_cached_until_it_is_within_the_refresh_margin(
    session: aiohttp.ClientSession, iam: tuple[FakeIam, str], clock: FakeClock
) -> None:
    fake, endpoint = iam
    auth = _token_auth(session, endpoint, clock, refresh_margin=timedelta(hours=1))
    assert (await auth.headers("GET", URL, {}, b""))["X-Auth-Token"] == "token-1"
    clock.advance(hours=22, minutes=59)
    assert (await auth.headers("GET", URL, {}, b""))["X-Auth-Token"] == "token-1"
    assert len(fake.requests) == 1
    clock.advance(minutes=2)  # 59 minutes left: inside the margin, though not expired
    assert (await auth.headers("GET", URL, {}, b""))["X-Auth-Token"] == "token-2"
    assert len(fake.requests) == 2


async def test_a_short_lived_token_is_not_refetched_on_every_request(
    session: aiohttp.ClientSession, iam: tuple[FakeIam, str], clock: FakeClock
) -> None:
    fake, endpoint = iam
    fake.lifetime = timedelta(minutes=30)  # shorter than the one-hour margin
    auth = _token_auth(session, endpoint, clock)
    for _ in range(5):
        await auth.headers("GET", URL, {}, b"")
    assert len(fake.requests) == 1
    clock.advance(minutes=16)
    await auth.headers("GET", URL, {}, b"")
    assert len(fake.requests) == 2


async def test_concurrent_callers_share_one_token_fetch(
    session: aiohttp.ClientSession, iam: tuple[FakeIam, str], clock: FakeClock
) -> None:
    fake, endpoint = iam
    auth = _token_auth(session, endpoint, clock)
    results = await asyncio.gather(*(auth.headers("GET", URL, {}, b"") for _ in range(20)))
    assert {r["X-Auth-Token"] for r in results} == {"token-1"}
    assert len(fake.requests) == 1


async def test_on_unauthorized_fetches_a_new_token_at_most_once_a_minute(
    session: aiohttp.ClientSession, iam: tuple[FakeIam, str], clock: FakeClock
) -> None:
    fake, endpoint = iam
    auth = _token_auth(session, endpoint, clock)
    await auth.headers("GET", URL, {}, b"")
    assert await auth.on_unauthorized() is True
    assert (await auth.headers("GET", URL, {}, b""))["X-Auth-Token"] == "token-2"
    clock.advance(seconds=59)
    assert await auth.on_unauthorized() is False
    assert len(fake.requests) == 2
    clock.advance(seconds=2)
    assert await auth.on_unauthorized() is True
    assert (await auth.headers("GET", URL, {}, b""))["X-Auth-Token"] == "token-3"


async def test_a_wall_clock_step_back_does_not_hold_back_a_new_token(
    session: aiohttp.ClientSession, iam: tuple[FakeIam, str], clock: FakeClock
) -> None:
    fake, endpoint = iam
    auth = _token_auth(session, endpoint, clock)
    await auth.headers("GET", URL, {}, b"")
    assert await auth.on_unauthorized() is True
    clock.advance(seconds=-45)  # NTP stepped the clock back
    assert await auth.on_unauthorized() is True
    assert len(fake.requests) == 3


async def test_a_failing_iam_raises_auth_error_without_the_password(
    session: aiohttp.ClientSession, iam: tuple[FakeIam, str], clock: FakeClock
) -> None:
    fake, endpoint = iam
    fake.failure = (
        401,
        {"error": {"code": 401, "message": f"The password {PASSWORD} is wrong", "title": "x"}},
    )
    auth = _token_auth(session, endpoint, clock)
    with capture_logs() as logs, pytest.raises(DliAuthError) as info:
        await auth.headers("GET", URL, {}, b"")
    error = info.value
    assert (error.operation, error.status, error.error_code) == ("iam_token", 401, "401")
    assert error.request_id == "iam-req-1"
    assert "is wrong" in error.error_msg
    for text in (
        str(error),
        repr(error),
        error.error_msg,
        repr(auth),
        json.dumps(logs, default=str),
    ):
        assert PASSWORD not in text


async def test_an_unreachable_iam_raises_auth_error(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    auth = _token_auth(session, f"http://127.0.0.1:{port}", clock)
    with pytest.raises(DliAuthError) as info:
        await auth.headers("GET", URL, {}, b"")
    assert info.value.operation == "iam_token"
    assert info.value.error_code == "connection_refused"
    assert PASSWORD not in str(info.value)


async def test_an_answer_without_the_subject_token_header_is_an_auth_error(
    session: aiohttp.ClientSession, iam: tuple[FakeIam, str], clock: FakeClock
) -> None:
    fake, endpoint = iam
    fake.omit_token_header = True
    with pytest.raises(DliAuthError, match="X-Subject-Token"):
        await _token_auth(session, endpoint, clock).headers("GET", URL, {}, b"")


async def test_a_failed_early_refresh_keeps_using_the_still_valid_token(
    session: aiohttp.ClientSession, iam: tuple[FakeIam, str], clock: FakeClock
) -> None:
    fake, endpoint = iam
    auth = _token_auth(session, endpoint, clock)
    await auth.headers("GET", URL, {}, b"")
    fake.failure = (500, {"error_code": "IAM.0001", "error_msg": "down"})
    clock.advance(hours=23, minutes=30)  # inside the margin, 30 minutes before expiry
    with capture_logs() as logs:
        headers = await auth.headers("GET", URL, {}, b"")
    assert headers["X-Auth-Token"] == "token-1"
    assert any("refresh failed" in entry["event"] for entry in logs)
    clock.advance(minutes=26)  # 4 minutes before expiry: no longer good enough
    with pytest.raises(DliAuthError):
        await auth.headers("GET", URL, {}, b"")


async def test_no_auth_passes_headers_through_and_never_retries() -> None:
    auth = NoAuth()
    assert await auth.headers("GET", URL, {"A": "1"}, b"") == {"A": "1"}
    assert await auth.on_unauthorized() is False


async def test_aksk_auth_never_retries_and_hides_its_secret() -> None:
    auth = AkSkAuth("AKCANARY0000", "CANARY-SK-123", "CANARY-TOKEN-123")
    assert await auth.on_unauthorized() is False
    assert "CANARY-SK-123" not in repr(auth)
    assert "CANARY-TOKEN-123" not in repr(auth)
