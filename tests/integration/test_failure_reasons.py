"""Failures carry the reason they really had, and a blip of failed posts costs seconds.

Real sockets throughout: a port nobody listens on (refused), a server that hangs up before
answering (reset), an HTTPS server whose certificate nobody trusts (TLS), the webhook receiver
answering 503/429/400 or too slowly, and the whole monitor against the simulator. No sleeps:
the monitor runs on a fake clock and retries are driven by hand.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from monitor.app import Monitor
from monitor.dli.errors import DliTransportError
from monitor.models import Event, EventKind, Job, JobState, Notification, utc_now
from monitor.poll.reasons import reason
from monitor.scheduler import CYCLE_JOB, TrackedJob, build_scheduler, run_soon
from monitor.sinks import WebhookSink
from monitor.sinks.base import SinkError
from tests.conftest import SINGLE, Harness, require_tool
from tests.fakes.receiver import Receiver, Reply


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request, then close the connection without a word."""
    await reader.read(1024)
    writer.close()


@pytest.fixture
async def rude_server() -> AsyncIterator[int]:
    """A TCP server that accepts and hangs up: the client sees a reset connection."""
    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway key and self-signed certificate for 127.0.0.1, made by openssl."""
    openssl = require_tool("openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


async def answer_ok(_request: web.Request) -> web.Response:
    """Any request: 200 with an empty JSON object."""
    return web.json_response({})


@pytest.fixture
async def untrusted_https(self_signed: tuple[Path, Path]) -> AsyncIterator[int]:
    """An HTTPS server with a self-signed certificate the client does not trust."""
    key, cert = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer_ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def poll_failure(harness: Harness, endpoint: str) -> str:
    """Poll through the whole monitor against `endpoint`; the reason its metric counted."""
    data = harness.config()
    data["dli"] = {**data["dli"], "endpoint": endpoint, "retry": {"attempts": 1, "backoff": [0]}}
    async with harness.monitor(dli=data["dli"]) as monitor:
        report = await monitor.run_cycle()
        assert not report.ok
        sample = monitor.metrics.registry.get_sample_value
        counted = [
            label
            for label in ("connection", "tls", "timeout", "other")
            if sample("dli_monitor_poll_errors_total", {**SINGLE, "queue": "etl", "reason": label})
        ]
    assert len(counted) == 1, counted
    return counted[0]


async def test_a_refused_dli_connection_is_a_connection_failure_not_a_timeout(
    harness: Harness,
) -> None:
    assert await poll_failure(harness, f"http://127.0.0.1:{closed_port()}") == "connection"


async def test_a_dli_server_that_hangs_up_is_a_connection_failure(
    harness: Harness, rude_server: int
) -> None:
    assert await poll_failure(harness, f"http://127.0.0.1:{rude_server}") == "connection"


async def test_an_untrusted_dli_certificate_is_a_tls_failure(
    harness: Harness, untrusted_https: int
) -> None:
    assert await poll_failure(harness, f"https://127.0.0.1:{untrusted_https}") == "tls"


@pytest.mark.parametrize(
    ("code", "expected"),
    [("timeout", "timeout"), ("tls", "tls"), ("connection_refused", "connection"),
     ("connection_reset", "connection"), ("connection_error", "connection")],
)  # fmt: skip
def test_transport_codes_fold_into_bounded_poll_reasons(code: str, expected: str) -> None:
    assert reason(DliTransportError("list_batches", error_code=code)) == expected


def notification() -> Notification:
    job = Job(id="j1", state=JobState.DEAD, queue="etl", name="nightly")
    event = Event(
        "e1", EventKind.TRANSITION, "etl", job, JobState.RUNNING, JobState.DEAD, utc_now()
    )
    return Notification(sink="hook", events=(event,))


async def send_to(url: str, *, timeout_s: float = 2.0) -> SinkError:
    """Send one notification through the real webhook sink; the error it raised."""
    async with aiohttp.ClientSession() as session:
        sink = WebhookSink("hook", url, session=session, project_id="p", timeout_s=timeout_s)
        with pytest.raises(SinkError) as info:
            await sink.send(notification())
    return info.value


async def test_a_refused_webhook_is_a_connection_failure() -> None:
    error = await send_to(f"http://127.0.0.1:{closed_port()}/hook")
    assert (error.kind, error.retryable) == ("connection", True)


async def test_a_webhook_that_hangs_up_is_a_connection_failure(rude_server: int) -> None:
    error = await send_to(f"http://127.0.0.1:{rude_server}/hook")
    assert (error.kind, error.retryable) == ("connection", True)


async def test_an_untrusted_webhook_certificate_is_a_tls_failure(untrusted_https: int) -> None:
    error = await send_to(f"https://127.0.0.1:{untrusted_https}/hook")
    assert error.kind == "tls"


@pytest.mark.parametrize(
    ("reply", "kind", "retryable"),
    [
        (Reply(503), "http_5xx", True),
        (Reply(429, headers={"Retry-After": "7"}), "throttled", True),
        (Reply(400), "http_4xx", False),
    ],
)
async def test_a_webhook_answer_is_classified_by_its_status(
    reply: Reply, kind: str, retryable: bool
) -> None:
    async with Receiver() as receiver:
        receiver.script([reply])
        error = await send_to(receiver.url)
    assert (error.kind, error.retryable) == (kind, retryable)


async def test_a_webhook_that_answers_too_late_is_a_timeout() -> None:
    async with Receiver() as receiver:
        receiver.hold()
        error = await send_to(receiver.url, timeout_s=0.2)
        receiver.release()
    assert (error.kind, error.retryable) == ("timeout", True)


async def test_two_failed_posts_cost_seconds_and_are_counted_by_reason(harness: Harness) -> None:
    harness.overrides["delivery"] = {"backoff": ["1s", "2s", "4s"], "jitter": 0.2}
    job = harness.world.add_job(queue="etl", name="x", state="running")
    await harness.cycle()
    harness.receiver.script([503, 503])
    harness.world.set_state(job.id, "dead")
    harness.clock.advance(30)
    async with harness.monitor() as monitor:
        await monitor.run_cycle()  # 503: next try in 1-1.2 s
        harness.clock.advance(1.25)
        await monitor.deliver()  # 503: next try in 2-2.4 s
        harness.clock.advance(2.45)
        await monitor.deliver()  # 200, 3.7 s after the first try
        failures = monitor.metrics.registry.get_sample_value(
            "dli_monitor_delivery_failures_total", {"sink": "hook", "reason": "http_5xx"}
        )
    assert len(harness.receiver.received) == 3
    assert len(harness.receiver.answered_payloads()) == 1
    assert failures == 2.0


def _next_cycle_in(monitor: Monitor) -> float:
    """Seconds from now (wall clock, as APScheduler counts) to the cycle's next run."""
    assert monitor.scheduler is not None
    job = monitor.scheduler.get_job(CYCLE_JOB)
    return (job.next_run_time - datetime.now(UTC)).total_seconds()


@asynccontextmanager
async def scheduled(monitor: Monitor) -> AsyncIterator[Monitor]:
    """The monitor's real scheduler, started paused: jobs are planned, none runs."""
    monitor.scheduler = build_scheduler(
        cycle=TrackedJob("poll cycle", monitor.run_cycle),
        interval_s=monitor.interval_s,
        delivery=TrackedJob("outbox drain", monitor.deliver),
        delivery_interval_s=1.0,
    )
    monitor.scheduler.start(paused=True)
    try:
        yield monitor
    finally:
        monitor.scheduler.shutdown(wait=False)


@pytest.mark.parametrize(
    ("status", "hurried"), [(503, True), (429, False), (None, False)], ids=["5xx", "429", "ok"]
)
async def test_a_failure_that_may_pass_brings_the_next_cycle_forward(
    harness: Harness, status: int | None, hurried: bool
) -> None:
    async with harness.monitor() as monitor, scheduled(monitor):
        await monitor.run_cycle()  # the baseline
        run_soon(monitor.scheduler, CYCLE_JOB, monitor.interval_s)  # as after a scheduled run
        if status == 503:
            harness.world.faults.fail("list_batches", status=503, count=10)
        elif status == 429:
            harness.world.faults.rate_limit("list_batches", retry_after=1, count=10)
        report = await monitor.run_cycle()
        assert report.ok is (status is None)
        wait = _next_cycle_in(monitor)
        if hurried:
            assert 3.0 < wait <= 5.0  # poll.failure_retry (5 s), not the 30 s interval
            assert report.failure_reasons == {"server_error"}
        else:
            assert wait > 25.0  # the interval stands
