"""The sinks: status classification, the webhook POST on a real socket, the console line."""

from __future__ import annotations

import hashlib
import hmac
import io
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from monitor import __version__
from monitor.codec import webhook_payload
from monitor.models import Event, EventKind, Job, JobState, Notification, event_id_for
from monitor.sinks import ConsoleSink, SinkError, WebhookSink, classify_status, parse_retry_after
from monitor.sinks.base import safe_text
from monitor.sinks.webhook import signature_headers
from tests.fakes.receiver import Receiver, Reply

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
CANARY_URL = "https://hooks.example/CANARY-TOKEN"


def make_event(
    kind: EventKind = EventKind.TRANSITION,
    from_state: JobState | None = JobState.RUNNING,
    to_state: JobState | None = JobState.DEAD,
    **job_fields: Any,
) -> Event:
    fields: dict[str, Any] = {
        "id": "0a32f1c2-5d6e-4f70-8a9b-0c1d2e3f4a5b",
        "state": to_state or JobState.RUNNING,
        "queue": "etl",
        "name": "nightly_etl",
        "owner": "bob",
        "duration_ms": 723_000,
        "log_tail": ("l1", "l2", "l3 password=hunter2", "YARN Diagnostics: exit code 1"),
    }
    fields.update(job_fields)
    job = Job(**fields)
    return Event(
        event_id=event_id_for("etl", job.id, kind, from_state, to_state, T0),
        kind=kind,
        target="etl",
        job=job,
        from_state=from_state,
        to_state=to_state,
        observed_at=T0,
    )


def note(*events: Event) -> Notification:
    return Notification("sink", events)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


# -- classification ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (200, None),
        (201, None),
        (202, None),
        (204, None),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, True),
        (410, False),
        (413, False),
        (422, False),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (301, False),
    ],
)
def test_classify_status_follows_the_retry_table(status: int, retryable: bool | None) -> None:
    error = classify_status(status, "", None)
    if retryable is None:
        assert error is None
    else:
        assert error is not None
        assert error.retryable is retryable
        assert error.reason.startswith(f"HTTP {status}")


def test_classify_status_quotes_a_redacted_200_char_excerpt_of_the_body() -> None:
    body = f'{{"error": "bad", "token": "CANARY-T1", "see": "{CANARY_URL}?x=1"}}' + "z" * 500
    error = classify_status(400, body, None)
    assert error is not None
    assert len(error.reason) <= len("HTTP 400: ") + 200
    assert "bad" in error.reason
    assert "CANARY" not in error.reason
    assert "https://hooks.example/…" in error.reason


def test_classify_status_carries_retry_after_for_retryable_answers_only() -> None:
    limited = classify_status(429, "slow down", "30")
    assert limited is not None and limited.retry_after == 30.0
    rejected = classify_status(400, "", "30")
    assert rejected is not None and rejected.retry_after is None


def test_safe_text_cuts_urls_to_their_host_and_masks_credentials() -> None:
    text = f"failed posting to {CANARY_URL}?k=CANARY-K with Authorization: Bearer abcdefghijkl"
    cleaned = safe_text(text)
    assert "CANARY" not in cleaned and "abcdefghijkl" not in cleaned
    assert "hooks.example" in cleaned


# -- webhook --------------------------------------------------------------------------------------


async def test_the_webhook_posts_the_documented_payload_with_its_headers(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    event = make_event()
    sink = WebhookSink(
        "hook", receiver.url, session=session, project_id="proj", headers={"X-Api-Key": "k1"}
    )
    await sink.send(note(event))
    (got,) = receiver.received
    assert got.json == webhook_payload(event, "proj")
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"] == f"dli-batch-monitor/{__version__}"
    assert got.headers["X-Event-Id"] == event.event_id
    assert got.headers["X-Api-Key"] == "k1"
    assert receiver.event_ids() == [event.event_id]


@pytest.mark.parametrize(
    ("reply", "retryable", "retry_after"),
    [
        (Reply(500), True, None),
        (Reply(503, headers={"Retry-After": "45"}), True, 45.0),
        (Reply(429, headers={"Retry-After": "30"}), True, 30.0),
        (Reply(400, body='{"error": "invalid payload"}'), False, None),
        (Reply(404), False, None),
    ],
)
async def test_the_webhook_turns_error_answers_into_sink_errors(
    receiver: Receiver,
    session: aiohttp.ClientSession,
    reply: Reply,
    retryable: bool,
    retry_after: float | None,
) -> None:
    receiver.script([reply])
    sink = WebhookSink("hook", receiver.url, session=session, project_id="p")
    with pytest.raises(SinkError) as caught:
        await sink.send(note(make_event()))
    assert caught.value.retryable is retryable
    assert caught.value.retry_after == retry_after
    assert caught.value.reason.startswith(f"HTTP {reply.status}")


async def test_a_webhook_that_does_not_answer_in_time_is_a_retryable_error(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    receiver.hold()
    url = receiver.url + "/CANARY-TOKEN?token=CANARY-Q"
    sink = WebhookSink("hook", url, session=session, project_id="p", timeout_s=0.05)
    with pytest.raises(SinkError) as caught:
        await sink.send(note(make_event()))
    assert caught.value.retryable
    assert "within 0.05s" in caught.value.reason
    assert "CANARY" not in str(caught.value) + repr(caught.value)
    assert caught.value.__context__ is None and caught.value.__cause__ is None


async def test_a_refused_connection_is_retryable_and_names_no_url_path(
    session: aiohttp.ClientSession,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = WebhookSink(
        "hook", f"http://127.0.0.1:{port}/CANARY-TOKEN", session=session, project_id="p"
    )
    with pytest.raises(SinkError) as caught:
        await sink.send(note(make_event()))
    assert caught.value.retryable
    assert "127.0.0.1" in caught.value.reason
    assert "CANARY" not in str(caught.value)
    assert caught.value.__context__ is None


class _NoDns(AbstractResolver):
    """A resolver for which no host exists: the canary URL never leaves the machine."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise OSError(f"no such host {host}")

    async def close(self) -> None:
        return None


async def test_the_canary_webhook_url_never_appears_in_an_error_or_repr() -> None:
    connector = aiohttp.TCPConnector(resolver=_NoDns())
    async with aiohttp.ClientSession(connector=connector) as session:
        sink = WebhookSink("hook", CANARY_URL, session=session, project_id="p")
        with pytest.raises(SinkError) as caught:
            await sink.send(note(make_event()))
    assert caught.value.retryable
    for text in (str(caught.value), repr(caught.value), repr(sink)):
        assert "CANARY-TOKEN" not in text
    assert "hooks.example" in repr(sink)


async def test_a_webhook_digest_wraps_every_event_payload_under_one_notification_id(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    first = make_event()
    second = make_event(id="1b43", name="hourly")
    digest = note(first, second)
    await WebhookSink("hook", receiver.url, session=session, project_id="proj").send(digest)
    (got,) = receiver.received
    assert got.json == {
        "kind": "digest",
        "notification_id": digest.notification_id,
        "project": "default",
        "project_id": "proj",
        "count": 2,
        "events": [webhook_payload(first, "proj"), webhook_payload(second, "proj")],
    }
    assert got.headers["X-Notification-Id"] == digest.notification_id
    assert "X-Event-Id" not in got.headers


async def test_a_single_event_carries_its_event_id_as_notification_id(
    receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    event = make_event()
    await WebhookSink("hook", receiver.url, session=session, project_id="p").send(note(event))
    assert receiver.received[0].headers["X-Notification-Id"] == event.event_id


# -- console --------------------------------------------------------------------------------------


async def test_the_console_prints_one_line_and_the_last_log_lines_of_a_failure() -> None:
    stream = io.StringIO()
    await ConsoleSink("console", stream).send(note(make_event()))
    assert stream.getvalue().splitlines() == [
        "2026-11-29T10:00:00Z  etl  nightly_etl (0a32…)  running → dead  ran 12m3s  owner=bob",
        "    l2",
        "    l3 password=***",
        "    YARN Diagnostics: exit code 1",
    ]


async def test_the_console_prints_no_log_lines_for_a_success() -> None:
    stream = io.StringIO()
    event = make_event(to_state=JobState.SUCCESS, owner="", duration_ms=45_000)
    await ConsoleSink("console", stream).send(note(event))
    assert stream.getvalue() == (
        "2026-11-29T10:00:00Z  etl  nightly_etl (0a32…)  running → success  ran 45s\n"
    )


async def test_the_console_names_appeared_and_vanished_jobs() -> None:
    stream = io.StringIO()
    sink = ConsoleSink("console", stream)
    await sink.send(note(make_event(EventKind.APPEARED, None, JobState.STARTING, duration_ms=None)))
    await sink.send(note(make_event(EventKind.VANISHED, JobState.RUNNING, None, log_tail=())))
    first, second = stream.getvalue().splitlines()
    assert "new → starting" in first and "ran " not in first
    assert "running → gone" in second


async def test_the_console_writes_to_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    await ConsoleSink("console").send(note(make_event(to_state=JobState.SUCCESS)))
    assert "running → success" in capsys.readouterr().out


async def test_the_console_never_fails_on_a_closed_stream() -> None:
    stream = io.StringIO()
    stream.close()
    await ConsoleSink("console", stream).send(note(make_event()))


async def test_a_console_digest_prints_a_summary_and_caps_the_event_lines() -> None:
    stream = io.StringIO()
    events = [make_event(id=f"job-{i:03}", name=f"job{i}") for i in range(25)]
    events.append(make_event(to_state=JobState.SUCCESS, id="ok-1", queue="adhoc"))
    await ConsoleSink("console", stream).send(note(*events))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "digest: 26 events (25 failures) on 2 queues"
    assert len(lines) == 1 + 20 + 1
    assert "job0 (job-…)  running → dead" in lines[1]
    assert lines[-1] == "  +6 more"
    assert not any("password" in line for line in lines)


def test_retry_after_http_dates_are_relative_to_now() -> None:
    later = T0 + timedelta(hours=1)
    assert parse_retry_after("Sun, 29 Nov 2026 10:01:30 GMT", later) == 0.0


async def test_a_webhook_with_a_secret_signs_each_attempt_with_hmac_sha256() -> None:
    secret = "CANARY-WEBHOOK-SECRET"
    async with Receiver() as receiver, aiohttp.ClientSession() as session:
        sink = WebhookSink(
            "signed",
            receiver.url,
            session=session,
            project_id="p",
            secret=secret,
            clock=lambda: T0,
        )
        await sink.send(Notification("signed", (make_event(),)))
    (request,) = receiver.received
    stamp = request.headers["X-Signature-Timestamp"]
    assert stamp == str(int(T0.timestamp()))
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + request.body, hashlib.sha256)
    assert request.headers["X-Signature"] == f"sha256={expected.hexdigest()}"
    assert secret not in str(request.headers)
    assert signature_headers(secret, b"x", T0) != signature_headers(secret, b"y", T0)
