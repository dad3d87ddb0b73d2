"""The neutral message content: facts, digests, redaction, console links and truncation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.models import Event, EventKind, Job, JobState, Notification
from monitor.sinks.content import (
    LIGHT_MARKDOWN,
    MARKDOWN,
    QUOTED_MARKDOWN,
    SLACK_MRKDWN,
    MessageContext,
    Severity,
    body_text,
    build_message,
    console_link,
    format_duration,
    size_of,
    truncate,
)

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def make_event(
    n: int = 1,
    *,
    queue: str = "etl_q",
    from_state: JobState | None = JobState.RUNNING,
    to_state: JobState | None = JobState.DEAD,
    kind: EventKind = EventKind.TRANSITION,
    log_tail: tuple[str, ...] = (),
) -> Event:
    job = Job(
        id=f"job-{n:04d}",
        state=to_state or JobState.RUNNING,
        queue=queue,
        name=f"nightly_etl_{n}",
        owner="alice",
        app_id=f"application_1700_{n}",
        duration_ms=754_000,
        log_tail=log_tail,
        state_since=T0,
    )
    return Event(f"ev{n:030d}", kind, "proj", job, from_state, to_state, T0)


def test_a_single_failure_carries_every_fact_an_on_call_person_needs() -> None:
    context = MessageContext.from_endpoint("https://dli.cn-north-4.myhuaweicloud.com")
    message = build_message(
        Notification("s", (make_event(),)), context.at(T0 + timedelta(minutes=3))
    )
    facts = {f.label: f.value for f in message.facts}
    assert message.title == "DLI job nightly_etl_1 DEAD on etl_q"
    assert message.severity is Severity.CRITICAL
    assert facts == {
        "Job": "nightly_etl_1",
        "Queue": "etl_q",
        "Transition": "running → dead (3m0s ago)",
        "Duration": "12m34s",
        "Owner": "alice",
        "Job id": "job-0001",
        "App id": "application_1700_1",
    }
    assert message.link == "https://console.huaweicloud.com/dli/?region=cn-north-4#/main/jobs/spark"
    assert message.footer == f"event {'ev' + '0' * 29 + '1'}"


def test_log_lines_are_redacted_again_and_only_the_last_ones_kept() -> None:
    logs = ("line 1", "line 2", "connect password=hunter2 failed", "token: abc123 expired")
    message = build_message(
        Notification("s", (make_event(log_tail=logs),)), MessageContext(log_lines=2)
    )
    assert message.log_lines == ("connect password=*** failed", "token: *** expired")


def test_a_digest_counts_by_queue_and_transition_and_lists_the_first_n() -> None:
    events = tuple(make_event(i, queue="a" if i < 8 else "b") for i in range(12))
    message = build_message(Notification("s", events), MessageContext(digest_jobs=5))
    assert message.title == "DLI: 12 job events, 12 failed"
    assert message.summary == ("a: running → dead: 8", "b: running → dead: 4")
    assert len(message.lines) == 5
    assert message.more == 7
    assert "+7 more" in body_text(message, MARKDOWN)


def test_first_sight_and_vanished_jobs_read_naturally() -> None:
    appeared = make_event(kind=EventKind.APPEARED, from_state=None)
    vanished = make_event(2, kind=EventKind.VANISHED, to_state=None)
    single = build_message(Notification("s", (vanished,)), MessageContext())
    assert single.severity is Severity.WARNING
    assert single.title.endswith("GONE on etl_q")
    both = build_message(Notification("s", (appeared, vanished)), MessageContext())
    assert "etl_q: new → dead: 1" in both.summary
    assert "etl_q: running → gone: 1" in both.summary


def test_a_success_is_ok_and_a_start_is_info() -> None:
    ok = make_event(to_state=JobState.SUCCESS)
    started = make_event(from_state=JobState.STARTING, to_state=JobState.RUNNING)
    assert build_message(Notification("s", (ok,)), MessageContext()).severity is Severity.OK
    assert build_message(Notification("s", (started,)), MessageContext()).severity is (
        Severity.INFO
    )


@pytest.mark.parametrize(
    ("endpoint", "link"),
    [
        ("https://dli.ap-southeast-1.myhuaweicloud.com", "region=ap-southeast-1"),
        ("dli.cn-east-3.myhuaweicloud.com:443", "region=cn-east-3"),
        ("http://127.0.0.1:8080", None),
        ("https://dli.example.com", None),
    ],
)
def test_the_console_link_takes_its_region_from_the_endpoint(
    endpoint: str, link: str | None
) -> None:
    found = console_link(endpoint)
    assert (found is None) if link is None else (found is not None and link in found)


def test_markup_escapes_names_so_they_cannot_inject_formatting() -> None:
    event = make_event()
    job = Job(id="j", state=JobState.DEAD, queue="q", name="<!channel> *x*")
    weird = Event(event.event_id, event.kind, "p", job, JobState.RUNNING, JobState.DEAD, T0)
    message = build_message(Notification("s", (weird,)), MessageContext())
    assert "<!channel>" not in body_text(message, SLACK_MRKDWN)
    assert "\\*x\\*" in body_text(message, MARKDOWN)


def test_a_job_name_cannot_mention_everyone_in_feishu_or_wecom() -> None:
    event = make_event()
    job = Job(
        id="j", state=JobState.DEAD, queue="q", name="x<at id=all></at>", log_tail=("<@all>",)
    )
    sneaky = Event(event.event_id, event.kind, "p", job, JobState.RUNNING, JobState.DEAD, T0)
    message = build_message(Notification("s", (sneaky,)), MessageContext())
    for markup in (LIGHT_MARKDOWN, QUOTED_MARKDOWN):
        text = body_text(message, markup)
        assert "<at" not in text and "<@all>" not in text
        assert "at id=all" in text  # still readable


@pytest.mark.parametrize("unit", ["bytes", "chars"])
def test_truncation_respects_the_limit_and_says_how_much_was_cut(unit: str) -> None:
    text = "\n".join(f"第{i}行 some text" for i in range(200))
    cut = truncate(text, 500, unit)  # type: ignore[arg-type]
    assert size_of(cut, unit) <= 500  # type: ignore[arg-type]
    kept = cut.count("\n")
    assert cut.endswith(f"… +{200 - kept} more lines")


def test_truncation_of_one_long_line_cuts_on_a_utf8_boundary() -> None:
    cut = truncate("错" * 1000, 100, "bytes")
    assert len(cut.encode()) <= 100
    assert cut.endswith("… (truncated)")
    cut.encode().decode("utf-8")  # still valid UTF-8


def test_short_text_is_left_alone() -> None:
    assert truncate("a\nb", 10, "chars") == "a\nb"


def test_durations_are_compact() -> None:
    assert [format_duration(s) for s in (5, 125, 7300, 90000)] == ["5s", "2m5s", "2h1m", "1d1h"]
