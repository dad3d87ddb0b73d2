"""`Retry-After` parsing, shared by the DLI client and the sinks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.retry_after import parse_retry_after

NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0.5", 0.5),
        ("Sun, 29 Nov 2026 10:01:30 GMT", 90.0),
        ("Sun, 29 Nov 2026 09:00:00 GMT", 0.0),
        ("soon", None),
        ("-5", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    header: str | None, expected: float | None
) -> None:
    assert parse_retry_after(header, NOW) == expected
