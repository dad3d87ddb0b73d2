"""Logging: one renderer for structlog and stdlib records, and secrets never reach the output."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import structlog

from monitor.logs import add_secrets, configure

CANARY = "CANARY-SK-logs-0123456789"
CANARY_URL = "https://hooks.example.invalid/hook/CANARY-SK-logs-url-token"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put structlog and the root logger back as they were, whatever a test configured."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    aps_level = logging.getLogger("apscheduler").level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(aps_level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


class TtyStream(io.StringIO):
    """A text stream that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def log_everything_that_could_leak() -> None:
    """Log the canaries every way the daemon might: values, keys, exceptions, stdlib loggers."""
    log = structlog.get_logger("monitor.test")
    log.info(
        "delivering",
        url=CANARY_URL,
        detail=f"auth failed with sk={CANARY}",
        nested={"headers": [CANARY, ("x", CANARY)], CANARY: 1},
        error=ValueError(CANARY),
    )
    log.warning("positional %s", CANARY)
    try:
        raise RuntimeError(f"request to {CANARY_URL} failed: {CANARY}")
    except RuntimeError:
        log.exception("delivery failed")
    logging.getLogger("aiohttp.client").warning("POST %s failed: %s", CANARY_URL, CANARY)
    try:
        raise OSError(CANARY)
    except OSError:
        logging.getLogger("asyncio").exception("task exception was never retrieved")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_registered_secret_never_appears_in_any_output(fmt: str) -> None:
    add_secrets([CANARY, CANARY_URL])
    stream = io.StringIO()
    configure(fmt, "debug", stream=stream)  # type: ignore[arg-type]

    log_everything_that_could_leak()

    output = stream.getvalue()
    assert "delivering" in output
    assert "delivery failed" in output
    assert "RuntimeError" in output
    assert "POST" in output and "aiohttp.client" in output
    assert "task exception was never retrieved" in output
    assert "CANARY-SK" not in output
    assert output.count("***") >= 8


def test_json_mode_writes_one_object_per_line_with_event_level_and_utc_timestamp() -> None:
    stream = io.StringIO()
    configure("json", stream=stream)
    before = datetime.now().astimezone()

    structlog.get_logger().info("cycle finished", jobs=3)
    logging.getLogger("aiohttp.access").info("GET /metrics 200")

    first, second = json_lines(stream)
    assert first["event"] == "cycle finished"
    assert first["level"] == "info"
    assert first["jobs"] == 3
    assert second["event"] == "GET /metrics 200"
    assert second["level"] == "info"
    assert second["logger"] == "aiohttp.access"
    for record in (first, second):
        stamp = str(record["timestamp"])
        assert stamp.endswith("Z")
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert abs(moment - before) < timedelta(seconds=5)


def test_exceptions_are_rendered_as_text_in_json() -> None:
    stream = io.StringIO()
    configure("json", stream=stream)

    try:
        raise KeyError("missing")
    except KeyError:
        structlog.get_logger().exception("boom")

    (record,) = json_lines(stream)
    assert record["level"] == "error"
    assert "KeyError: 'missing'" in str(record["exception"])


def test_bound_context_variables_are_merged_into_every_event() -> None:
    stream = io.StringIO()
    configure("json", stream=stream)

    with structlog.contextvars.bound_contextvars(cycle_id="c-42", queue="etl"):
        structlog.get_logger().info("polled")
        logging.getLogger("aiohttp.client").warning("slow")

    for record in json_lines(stream):
        assert (record["cycle_id"], record["queue"]) == ("c-42", "etl")


def test_the_level_filters_structlog_and_stdlib_records() -> None:
    stream = io.StringIO()
    configure("json", "warning", stream=stream)

    structlog.get_logger().info("hidden")
    logging.getLogger("aiohttp.client").info("hidden too")
    structlog.get_logger().warning("shown")
    logging.getLogger("aiohttp.client").error("shown too")

    assert [r["event"] for r in json_lines(stream)] == ["shown", "shown too"]


def test_apscheduler_info_chatter_is_quiet_but_its_warnings_pass() -> None:
    stream = io.StringIO()
    configure("json", "debug", stream=stream)

    logging.getLogger("apscheduler.scheduler").info("Added job")
    logging.getLogger("apscheduler.executors.default").warning("Run time of job was missed")

    assert [r["event"] for r in json_lines(stream)] == ["Run time of job was missed"]


def test_without_a_format_a_terminal_gets_console_output_and_a_pipe_gets_json() -> None:
    pipe = io.StringIO()
    configure(stream=pipe)
    structlog.get_logger().info("to a pipe")
    assert json_lines(pipe)[0]["event"] == "to a pipe"

    terminal = TtyStream()
    configure(stream=terminal)
    structlog.get_logger().info("to a terminal")
    text = terminal.getvalue()
    assert "to a terminal" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_configuring_again_replaces_the_previous_setup() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure("json", stream=first)
    configure("json", stream=second)

    structlog.get_logger().info("once")
    logging.getLogger("aiohttp.client").warning("once too")

    assert first.getvalue() == ""
    assert [r["event"] for r in json_lines(second)] == ["once", "once too"]


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure("json", "verbose", stream=io.StringIO())


def test_short_values_are_not_registered_as_secrets() -> None:
    add_secrets(["", "ab", "etl"])
    stream = io.StringIO()
    configure("json", stream=stream)

    structlog.get_logger().info("polled etl", queue="etl", note="ab")

    (record,) = json_lines(stream)
    assert (record["event"], record["queue"], record["note"]) == ("polled etl", "etl", "ab")


def test_a_skipped_overlapping_tick_is_not_a_warning_but_a_failing_job_is_an_error() -> None:
    stream = io.StringIO()
    configure("json", "info", stream=stream)

    logging.getLogger("apscheduler.scheduler").warning(
        'Execution of job "poll cycle" skipped: maximum number of running instances reached (1)'
    )
    logging.getLogger("apscheduler.scheduler").error('Job "poll cycle" raised an exception')

    assert [r["event"] for r in json_lines(stream)] == ['Job "poll cycle" raised an exception']
