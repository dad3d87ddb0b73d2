"""The DLI client against small aiohttp apps on real sockets: signing, paging, retries, errors."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from monitor import __version__
from monitor.dli.auth import AkSkAuth, Auth, IamTokenAuth, NoAuth
from monitor.dli.budget import RequestBudget
from monitor.dli.client import DliClient, RetryPolicy
from monitor.dli.errors import (
    DliAuthError,
    DliBadResponse,
    DliNotFound,
    DliRateLimited,
    DliRequestError,
    DliServerError,
    DliTransportError,
    parse_error_body,
)
from monitor.dli.signer import verify

PROJECT = "0123456789abcdef0123456789abcdef"
AK = "AKCANARY000000000001"
SK = "CANARY-SK-123"
PASSWORD = "CANARY-PW-123"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
JOB_ID = "0a324461-d9d9-45da-a52a-3b3c7a3d809e"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    """One request as the fake server received it."""

    method: str
    path: str
    raw_query: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    signature_error: str | None


@dataclass
class FakeDli:
    """A scriptable DLI (and IAM) endpoint that checks AK/SK signatures when given a secret."""

    secrets: dict[str, str] = field(default_factory=dict)
    script: deque[Handler] = field(default_factory=deque)
    requests: list[Seen] = field(default_factory=list)
    iam_requests: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    valid_tokens: set[str] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/v3/auth/tokens":
            return await self._iam(request)
        query = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)
        reason = None
        if self.secrets:
            reason = verify(
                method=request.method,
                path=request.rel_url.raw_path,
                query=query,
                headers=dict(request.headers),
                body=await request.read(),
                secret_for=self.secrets,
            )
        self.requests.append(
            Seen(
                request.method,
                request.rel_url.raw_path,
                request.rel_url.raw_query_string,
                query,
                dict(request.headers),
                reason,
            )
        )
        if reason is not None:
            return _error(401, "APIG.0301", reason)
        if self.valid_tokens and request.headers.get("X-Auth-Token") not in self.valid_tokens:
            return _error(401, "APIG.0301", "Incorrect IAM authentication information")
        if self.script:
            return await self.script.popleft()(request)
        return web.json_response({"from": 0, "total": 0, "sessions": []})

    async def _iam(self, request: web.Request) -> web.Response:
        self.iam_requests += 1
        expires = (NOW + timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return web.json_response(
            {"token": {"expires_at": expires}},
            status=201,
            headers={"X-Subject-Token": f"token-{self.iam_requests}"},
        )

    async def hang(self, request: web.Request) -> web.StreamResponse:
        """Answer only when the test releases the server (used to provoke client timeouts)."""
        await asyncio.wait_for(self.release.wait(), 5)
        return web.json_response({})


def _error(status: int, code: str, msg: str) -> web.Response:
    return web.json_response({"error_code": code, "error_msg": msg}, status=status)


def reply(
    status: int = 200,
    body: Any = None,
    *,
    text: str | None = None,
    headers: dict[str, str] | None = None,
) -> Handler:
    """A scripted answer."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if text is not None:
            return web.Response(status=status, text=text, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    return handler


def jobs_page(*ids: str, total: int | None = None, offset: int = 0) -> Handler:
    sessions = [{"id": i, "state": "running", "queue": "etl"} for i in ids]
    return reply(
        body={"from": offset, "total": len(ids) if total is None else total, "sessions": sessions}
    )


@dataclass
class Harness:
    """The fake server plus what the client under test reported."""

    fake: FakeDli
    endpoint: str
    session: aiohttp.ClientSession
    sleeps: list[float] = field(default_factory=list)
    observed: list[tuple[str, str]] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def client(self, auth: Auth | None = None, **kw: Any) -> DliClient:
        kw.setdefault("endpoint", self.endpoint)
        kw.setdefault("observer", lambda op, code: self.observed.append((op, code)))
        return DliClient(
            self.session,
            project_id=PROJECT,
            auth=auth or NoAuth(),
            sleep=self.sleep,
            clock=lambda: NOW,
            **kw,
        )

    def token_auth(self) -> IamTokenAuth:
        return IamTokenAuth(
            self.session,
            iam_endpoint=self.endpoint,
            domain_name="acme",
            username="poller",
            password=PASSWORD,
            project_id=PROJECT,
            clock=lambda: NOW,
        )


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    fake = FakeDli()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        try:
            yield Harness(fake, str(server.make_url("")).rstrip("/"), session)
        finally:
            fake.release.set()


def _aksk() -> AkSkAuth:
    return AkSkAuth(AK, SK, clock=lambda: NOW)


# --- requests as sent ---------------------------------------------------------------------


async def test_paging_params_arrive_exactly_as_signed(harness: Harness) -> None:
    harness.fake.secrets = {AK: SK}
    harness.fake.script.append(jobs_page("a", "b", total=7, offset=100))
    page = await harness.client(_aksk()).list_batches(
        offset=100, size=50, queue_name="etl queue/é+x"
    )
    [seen] = harness.fake.requests
    assert seen.signature_error is None
    assert seen.path == f"/v2.0/{PROJECT}/batches"
    assert seen.raw_query == "from=100&queue_name=etl%20queue%2F%C3%A9%2Bx&size=50"
    assert dict(seen.query) == {"from": "100", "size": "50", "queue_name": "etl queue/é+x"}
    assert seen.headers["X-Project-Id"] == PROJECT
    assert seen.headers["User-Agent"] == f"dli-batch-monitor/{__version__}"
    assert seen.headers["Content-Type"] == "application/json"
    assert "content-type;host;user-agent;x-project-id;x-sdk-date" in seen.headers["Authorization"]
    assert page.offset == 100
    assert page.total == 7
    assert [row["id"] for row in page.rows] == ["a", "b"]


async def test_no_queue_name_and_no_order_are_sent_unless_asked(harness: Harness) -> None:
    await harness.client().list_batches(offset=0, size=100)
    assert harness.fake.requests[0].raw_query == "from=0&size=100"


async def test_state_and_details_paths_carry_the_job_id(harness: Harness) -> None:
    harness.fake.secrets = {AK: SK}
    harness.fake.script.extend(
        [reply(body={"id": JOB_ID, "state": "Success"}), reply(body={"id": JOB_ID, "name": "n"})]
    )
    client = harness.client(_aksk())
    assert await client.get_state(JOB_ID) == "Success"
    assert await client.get_batch(JOB_ID) == {"id": JOB_ID, "name": "n"}
    paths = [seen.path for seen in harness.fake.requests]
    assert paths == [f"/v2.0/{PROJECT}/batches/{JOB_ID}/state", f"/v2.0/{PROJECT}/batches/{JOB_ID}"]
    assert all(seen.signature_error is None for seen in harness.fake.requests)
    assert [op for op, _ in harness.observed] == ["get_state", "get_batch"]


async def test_an_odd_job_id_is_one_encoded_path_segment_and_signed_as_sent(
    harness: Harness,
) -> None:
    harness.fake.secrets = {AK: SK}
    harness.fake.script.append(reply(body={"id": "x", "state": "running"}))
    await harness.client(_aksk()).get_state("job 1/é")
    [seen] = harness.fake.requests
    assert seen.path == f"/v2.0/{PROJECT}/batches/job%201%2F%C3%A9/state"
    assert seen.signature_error is None


async def test_a_job_id_that_would_change_the_path_is_refused_without_a_request(
    harness: Harness,
) -> None:
    with pytest.raises(DliRequestError):
        await harness.client().get_state("..")
    assert harness.fake.requests == []


# --- response shapes ----------------------------------------------------------------------


async def test_non_object_rows_are_counted_as_malformed_and_left_out(harness: Harness) -> None:
    body = {"from": 0, "total": "3", "sessions": [{"id": "a"}, "junk", None, {"id": "b"}]}
    harness.fake.script.append(reply(body=body))
    page = await harness.client().list_batches(offset=0, size=10)
    assert [row["id"] for row in page.rows] == ["a", "b"]
    assert page.malformed == 2
    assert page.total is None  # not an int


@pytest.mark.parametrize("body", [{"from": 0, "total": 1}, {"sessions": {"id": "a"}}])
async def test_sessions_that_is_not_a_list_is_a_bad_response(
    harness: Harness, body: dict[str, Any]
) -> None:
    harness.fake.script.append(reply(body=body))
    with pytest.raises(DliBadResponse):
        await harness.client().list_batches(offset=0, size=10)


async def test_a_non_json_200_is_retried_like_a_5xx(harness: Harness) -> None:
    harness.fake.script.append(reply(text='{"from": 0, "sessions": [{"id": "'))
    harness.fake.script.append(reply(body={"from": 0, "total": 0, "sessions": []}))
    page = await harness.client().list_batches(offset=0, size=10)
    assert page.rows == ()
    assert len(harness.fake.requests) == 2
    assert harness.sleeps == [1.0]


async def test_a_non_json_200_on_every_try_is_a_bad_response(harness: Harness) -> None:
    for _ in range(4):
        harness.fake.script.append(
            reply(text="<html>gateway</html>", headers={"X-Request-Id": "r-1"})
        )
    with pytest.raises(DliBadResponse) as info:
        await harness.client().list_batches(offset=0, size=10)
    assert info.value.status == 200
    assert info.value.request_id == "r-1"
    assert len(harness.fake.requests) == 4
    assert harness.sleeps == [1.0, 2.0, 4.0]


async def test_a_json_array_200_is_a_bad_response(harness: Harness) -> None:
    for _ in range(4):
        harness.fake.script.append(reply(body=[1, 2]))
    with pytest.raises(DliBadResponse, match="not an object"):
        await harness.client().list_batches(offset=0, size=10)


async def test_a_state_answer_without_a_string_state_is_a_bad_response(harness: Harness) -> None:
    harness.fake.script.append(reply(body={"id": JOB_ID, "state": None}))
    with pytest.raises(DliBadResponse):
        await harness.client().get_state(JOB_ID)


# --- errors -------------------------------------------------------------------------------


async def test_error_body_fields_and_the_request_id_land_on_the_error(harness: Harness) -> None:
    harness.fake.script.append(
        reply(
            400,
            {"error_code": "DLI.0001", "error_msg": "bad size"},
            headers={"X-Request-Id": "abc"},
        )
    )
    with pytest.raises(DliRequestError) as info:
        await harness.client().list_batches(offset=0, size=-1)
    error = info.value
    assert (error.operation, error.status, error.error_code) == ("list_batches", 400, "DLI.0001")
    assert (error.error_msg, error.request_id) == ("bad size", "abc")
    assert str(error) == "list_batches failed: HTTP 400 DLI.0001 'bad size' (request_id=abc)"
    assert len(harness.fake.requests) == 1


@pytest.mark.parametrize(("status", "code"), [(400, "DLI.0002"), (404, "DLI.0023"), (404, "")])
async def test_a_missing_job_on_get_state_is_not_found(
    harness: Harness, status: int, code: str
) -> None:
    harness.fake.script.append(reply(status, {"error_code": code, "error_msg": "no such job"}))
    with pytest.raises(DliNotFound) as info:
        await harness.client().get_state(JOB_ID)
    assert info.value.operation == "get_state"
    assert len(harness.fake.requests) == 1


async def test_a_gateway_route_404_is_not_mistaken_for_a_missing_job(harness: Harness) -> None:
    harness.fake.script.append(reply(404, {"error_code": "APIG.0101", "error_msg": "no route"}))
    with pytest.raises(DliRequestError) as info:
        await harness.client().get_state(JOB_ID)
    assert not isinstance(info.value, DliNotFound)


async def test_a_403_is_an_auth_error_without_retry_or_token_refresh(harness: Harness) -> None:
    harness.fake.script.append(reply(403, {"error_code": "DLI.0013", "error_msg": "forbidden"}))
    with pytest.raises(DliAuthError):
        await harness.client(harness.token_auth()).list_batches(offset=0, size=10)
    assert len(harness.fake.requests) == 1
    assert harness.fake.iam_requests == 1  # the first token only


async def test_a_redirect_is_not_followed(harness: Harness) -> None:
    harness.fake.script.append(reply(302, {}, headers={"Location": "http://evil.example/"}))
    with pytest.raises(DliRequestError):
        await harness.client().list_batches(offset=0, size=10)
    assert len(harness.fake.requests) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"error_code": "DLI.0999", "error_msg": "m", "request_id": "r"}',
            ("DLI.0999", "m", "r"),
        ),
        (b'{"errorCode": "X.1", "errorMsg": "camel"}', ("X.1", "camel", "")),
        (b'{"code": "Y.2", "message": "plain"}', ("Y.2", "plain", "")),
        (b'{"error": {"code": "IAM.01", "message": "nested"}}', ("IAM.01", "nested", "")),
        (b'{"msg": "Session not found."}', ("", "Session not found.", "")),
        (b"Bad Gateway", ("", "Bad Gateway", "")),
        (b"", ("", "", "")),
    ],
)
def test_error_bodies_are_parsed_like_the_sdk(body: bytes, expected: tuple[str, str, str]) -> None:
    assert parse_error_body(body) == expected


async def test_a_long_error_message_is_truncated(harness: Harness) -> None:
    harness.fake.script.append(reply(400, {"error_code": "DLI.0001", "error_msg": "x" * 5000}))
    with pytest.raises(DliRequestError) as info:
        await harness.client().list_batches(offset=0, size=10)
    assert len(info.value.error_msg) == 300
    assert len(str(info.value)) < 400


# --- retries ------------------------------------------------------------------------------


async def test_a_500_then_a_200_is_retried_after_the_first_backoff(harness: Harness) -> None:
    harness.fake.script.extend(
        [reply(500, {"error_code": "DLI.0999", "error_msg": "boom"}), jobs_page("a")]
    )
    with capture_logs() as logs:
        page = await harness.client().list_batches(offset=0, size=10)
    assert [row["id"] for row in page.rows] == ["a"]
    assert harness.sleeps == [1.0]
    assert harness.observed == [("list_batches", "500"), ("list_batches", "200")]
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert warning["event"] == "attempt #1/4 failed; will retry"
    assert (warning["operation"], warning["status"], warning["error_code"]) == (
        "list_batches",
        500,
        "DLI.0999",
    )


async def test_server_errors_on_every_attempt_escalate_after_the_last_one(
    harness: Harness,
) -> None:
    harness.fake.script.extend(reply(502 + i, {}) for i in range(3))
    client = harness.client(retry=RetryPolicy(attempts=3, backoff=(1.0, 2.0)))
    with capture_logs() as logs, pytest.raises(DliServerError) as info:
        await client.list_batches(offset=0, size=10)
    assert info.value.status == 504
    assert harness.sleeps == [1.0, 2.0]
    assert len(harness.fake.requests) == 3
    assert [e["event"] for e in logs] == [
        "attempt #1/3 failed; will retry",
        "attempt #2/3 failed; will retry",
        "attempt #3/3 failed; escalating",
    ]


async def test_the_last_backoff_value_repeats(harness: Harness) -> None:
    harness.fake.script.extend(reply(500, {}) for _ in range(5))
    client = harness.client(retry=RetryPolicy(attempts=5, backoff=(0.5, 3.0)))
    with pytest.raises(DliServerError):
        await client.get_state(JOB_ID)
    assert harness.sleeps == [0.5, 3.0, 3.0, 3.0]


async def test_a_408_is_retried(harness: Harness) -> None:
    harness.fake.script.extend([reply(408, {}), reply(body={"id": JOB_ID, "state": "dead"})])
    assert await harness.client().get_state(JOB_ID) == "dead"
    assert len(harness.fake.requests) == 2


async def test_a_429_waits_for_the_retry_after_seconds(harness: Harness) -> None:
    harness.fake.script.extend(
        [
            reply(
                429,
                {"error_code": "APIG.0308", "error_msg": "throttled"},
                headers={"Retry-After": "7"},
            ),
            jobs_page("a"),
        ]
    )
    await harness.client().list_batches(offset=0, size=10)
    assert harness.sleeps == [7.0]
    assert harness.observed == [("list_batches", "429"), ("list_batches", "200")]


async def test_a_429_retry_after_date_is_honoured_and_capped(harness: Harness) -> None:
    soon = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    late = format_datetime(NOW + timedelta(hours=2), usegmt=True)
    harness.fake.script.extend(
        [
            reply(429, {}, headers={"Retry-After": soon}),
            reply(429, {}, headers={"Retry-After": late}),
            jobs_page(),
        ]
    )
    await harness.client().list_batches(offset=0, size=10)
    assert harness.sleeps == [30.0, 120.0]


async def test_a_429_without_retry_after_falls_back_to_the_backoff(harness: Harness) -> None:
    harness.fake.script.extend(
        [reply(429, {}), reply(429, {}, headers={"Retry-After": "soon"}), jobs_page()]
    )
    await harness.client().list_batches(offset=0, size=10)
    assert harness.sleeps == [1.0, 2.0]


async def test_throttling_on_every_attempt_raises_rate_limited(harness: Harness) -> None:
    harness.fake.script.extend(
        reply(429, {"error_code": "APIG.0308"}, headers={"Retry-After": "1"}) for _ in range(4)
    )
    with pytest.raises(DliRateLimited):
        await harness.client().list_batches(offset=0, size=10)
    assert len(harness.fake.requests) == 4


async def test_timeouts_are_retried_then_raise_a_transport_error(harness: Harness) -> None:
    harness.fake.script.extend([harness.fake.hang, harness.fake.hang])
    client = harness.client(timeout_s=0.05, retry=RetryPolicy(attempts=2, backoff=(0.0,)))
    with pytest.raises(DliTransportError) as info:
        await client.list_batches(offset=0, size=10)
    assert info.value.error_code == "timeout"
    assert info.value.status is None
    assert harness.observed == [("list_batches", "timeout"), ("list_batches", "timeout")]


async def test_a_timeout_then_an_answer_succeeds(harness: Harness) -> None:
    harness.fake.script.extend([harness.fake.hang, jobs_page("a")])
    client = harness.client(timeout_s=0.05)
    page = await client.list_batches(offset=0, size=10)
    assert [row["id"] for row in page.rows] == ["a"]
    assert harness.sleeps == [1.0]


async def test_connection_errors_are_retried_then_raise_a_transport_error(
    harness: Harness,
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = harness.client(endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(DliTransportError) as info:
        await client.list_batches(offset=0, size=10)
    assert info.value.error_code == "connection_refused"
    assert harness.observed == [("list_batches", "connection_refused")] * 4
    assert harness.sleeps == [1.0, 2.0, 4.0]


async def test_every_attempt_goes_through_the_budget(harness: Harness) -> None:
    now = [0.0]
    budget_sleeps: list[float] = []

    async def budget_sleep(seconds: float) -> None:
        budget_sleeps.append(seconds)
        now[0] += seconds

    budget = RequestBudget(1, monotonic=lambda: now[0], sleep=budget_sleep)
    harness.fake.script.extend([reply(500, {}), jobs_page()])
    await harness.client(budget=budget).list_batches(offset=0, size=10)
    assert budget_sleeps == [60.0]  # the retry had to wait for the window


async def test_a_failing_observer_does_not_break_the_request(harness: Harness) -> None:
    def broken(operation: str, code: str) -> None:
        raise RuntimeError("metrics down")

    harness.fake.script.append(jobs_page("a"))
    with capture_logs() as logs:
        page = await harness.client(observer=broken).list_batches(offset=0, size=10)
    assert [row["id"] for row in page.rows] == ["a"]
    assert [e["event"] for e in logs] == ["request observer failed"]


# --- 401 handling -------------------------------------------------------------------------


async def test_a_401_with_aksk_raises_at_once_after_exactly_one_request(harness: Harness) -> None:
    harness.fake.secrets = {AK: "another-secret"}  # every signature we make is wrong
    with pytest.raises(DliAuthError) as info:
        await harness.client(_aksk()).list_batches(offset=0, size=10)
    assert info.value.error_code == "APIG.0301"
    assert len(harness.fake.requests) == 1
    assert harness.sleeps == []


async def test_a_401_with_token_auth_refreshes_once_and_retries(harness: Harness) -> None:
    harness.fake.valid_tokens = {"token-2"}  # token-1 was revoked
    harness.fake.script.append(jobs_page("a"))
    page = await harness.client(harness.token_auth()).list_batches(offset=0, size=10)
    assert [row["id"] for row in page.rows] == ["a"]
    assert harness.fake.iam_requests == 2
    tokens = [seen.headers["X-Auth-Token"] for seen in harness.fake.requests]
    assert tokens == ["token-1", "token-2"]
    assert harness.sleeps == []


async def test_a_401_after_a_fresh_token_is_not_retried_again(harness: Harness) -> None:
    harness.fake.valid_tokens = {"never-issued"}
    with pytest.raises(DliAuthError):
        await harness.client(harness.token_auth()).list_batches(offset=0, size=10)
    assert len(harness.fake.requests) == 2
    assert harness.fake.iam_requests == 2


class AlwaysFresh:
    """An authenticator that claims a fresh credential after every 401."""

    def __init__(self) -> None:
        self.calls = 0

    async def headers(self, method: str, url: Any, headers: Any, body: bytes) -> dict[str, str]:
        return dict(headers)

    async def on_unauthorized(self) -> bool:
        self.calls += 1
        return True


async def test_a_401_is_retried_at_most_once_even_if_auth_keeps_saying_yes(
    harness: Harness,
) -> None:
    harness.fake.script.extend(reply(401, {"error_code": "APIG.0301"}) for _ in range(5))
    auth = AlwaysFresh()
    with pytest.raises(DliAuthError):
        await harness.client(auth).list_batches(offset=0, size=10)
    assert len(harness.fake.requests) == 2
    assert auth.calls == 1


# --- secrets ------------------------------------------------------------------------------


async def test_secrets_never_appear_in_errors_or_logs(harness: Harness) -> None:
    leaky = (
        f"password={PASSWORD} x-auth-token: CANARY-TOKEN-123 Authorization: Bearer CANARY-BEARER-1"
    )
    harness.fake.secrets = {AK: SK}
    harness.fake.script.extend(
        [
            reply(500, {"error_code": "DLI.0999", "error_msg": leaky}),
            reply(400, {"error_code": "DLI.0001", "error_msg": leaky}),
        ]
    )
    client = harness.client(_aksk())
    with capture_logs() as logs, pytest.raises(DliRequestError) as info:
        await client.list_batches(offset=0, size=10)
    texts = [
        str(info.value),
        repr(info.value),
        info.value.error_msg,
        repr(client),
        json.dumps(logs, default=str),
    ]
    for canary in (SK, PASSWORD, "CANARY-TOKEN-123", "CANARY-BEARER-1"):
        for text in texts:
            assert canary not in text
    assert harness.fake.requests[0].signature_error is None
