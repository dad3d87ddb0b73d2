"""Turning one raw DLI batch object (a `sessions[]` row or a details body) into a `Job`.

Tolerant by design: only a missing id makes a row unusable; odd states become `UNKNOWN`
(the raw value is kept), bad timestamps become None. Log lines are redacted and truncated
here, and `req_body` (the original create request, which can hold credentials) is never
read. Paging, de-duplication and deciding what a listing means are the poller's business.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.models import Job, JobState
from monitor.redact import redact_text

MAX_RAW_STATE = 64
"""Longest raw state value kept, in characters."""

MAX_LOG_LINES = 10
"""How many of the newest log lines are kept (DLI returns the last 10)."""

MAX_LOG_LINE = 500
"""Longest log line kept, in characters."""

MAX_LOG_SCAN = 4 * MAX_LOG_LINE
"""How much of one log line is looked at at all (a 1 MB line costs no more than this)."""

MAX_TEXT = 256
"""Longest name, owner, queue or application id kept (DLI caps names at 128)."""


class MalformedJob(ValueError):
    """A raw batch object that cannot be a `Job` (no id); the text holds no row content."""


def parse_job(raw: Mapping[str, Any], *, default_queue: str) -> Job:
    """Build a `Job` from a raw batch object; raises MalformedJob only when the id is unusable."""
    job_id = raw.get("id")
    if not isinstance(job_id, str) or not job_id.strip():
        raise MalformedJob("batch object without a non-empty string 'id'")
    raw_state = raw.get("state")
    return Job(
        id=job_id,
        state=JobState.parse(raw_state),
        queue=_queue(raw, default_queue),
        name=_text(raw.get("name")),
        owner=_text(raw.get("owner")),
        app_id=_text(raw.get("appId")),
        sc_type=_text(raw.get("sc_type")),
        raw_state="" if raw_state is None else str(raw_state)[:MAX_RAW_STATE],
        create_time=_epoch_ms(raw.get("create_time")),
        update_time=_epoch_ms(raw.get("update_time")),
        duration_ms=_non_negative_int(raw.get("duration")),
        log_tail=_log_tail(raw.get("log")),
    )


def _text(value: object) -> str:
    """A field as clean, bounded text: '' for None, `str()` of a non-string, control
    characters dropped, at most `MAX_TEXT` characters (an ellipsis marks a cut)."""
    if value is None:
        return ""
    return clean(value if isinstance(value, str) else str(value), MAX_TEXT)


def clean(text: str, limit: int) -> str:
    """`text` without control characters (tabs become spaces), cut to `limit` with '…'."""
    if text.isprintable() and len(text) <= limit:
        return text
    kept = "".join(
        " " if c == "\t" else c for c in text if c == "\t" or unicodedata.category(c)[0] != "C"
    )
    return kept if len(kept) <= limit else kept[: limit - 1] + "\u2026"


def _queue(raw: Mapping[str, Any], default_queue: str) -> str:
    """`queue`, else `cluster_name`, else the queue that was asked for."""
    for key in ("queue", "cluster_name"):
        value = raw.get(key)
        if isinstance(value, str) and value:
            return clean(value, MAX_TEXT)
    return default_queue


def _non_negative_int(value: object) -> int | None:
    """A non-negative int, or an all-ASCII-digits string as int; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            return int(text)
    return None


def _epoch_ms(value: object) -> datetime | None:
    """Epoch milliseconds as an aware UTC datetime; None when missing, zero or invalid."""
    ms = _non_negative_int(value)
    if not ms:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _log_tail(value: object) -> tuple[str, ...]:
    """The newest log lines, each redacted and truncated; () unless a list."""
    if not isinstance(value, list):
        return ()
    lines = [line for line in value if isinstance(line, str)]
    return tuple(
        clean(redact_text(line[:MAX_LOG_SCAN]), MAX_LOG_LINE) for line in lines[-MAX_LOG_LINES:]
    )
