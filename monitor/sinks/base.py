"""The sink contract: the `Sink` protocol, `SinkError`, and HTTP status classification.

A sink sends one notification (a single event, or a digest of several) somewhere and either
returns (delivered) or raises `SinkError` saying whether trying again later could help. Sinks
never retry and never sleep: retry policy lives in one place, `monitor.dispatch_outcomes`.
Everything here keeps secrets out of error texts: a reason never holds a URL path or query, a
token or a password (`safe_text`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol

from monitor.models import SINK_FAILURE_KINDS, Notification, utc_now
from monitor.redact import redact_text, redact_url
from monitor.retry_after import parse_retry_after

EXCERPT_CHARS = 200
"""How much of a response body (after redaction) an error reason may quote."""

ProjectIds = str | Mapping[str, str]
"""A sink's `project_id` argument: one DLI project id for every event, or one per project name."""


def project_lookup(project_ids: ProjectIds) -> Callable[[str], str]:
    """`project_ids` as a lookup by project name (an unknown name: the empty string)."""
    if isinstance(project_ids, str):
        return lambda _name: project_ids
    table = dict(project_ids)
    return lambda name: table.get(name, "")


_URL = re.compile(r"""(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>]+""")
_SPACE = re.compile(r"\s+")


class SinkError(Exception):
    """A send that did not deliver; `retryable` says whether a later attempt may succeed, and
    `kind` (one of `SINK_FAILURE_KINDS`) why, in a word."""

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        kind: str = "other",
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.kind = kind if kind in SINK_FAILURE_KINDS else "other"

    def __repr__(self) -> str:
        return (
            f"SinkError({self.reason!r}, retryable={self.retryable},"
            f" retry_after={self.retry_after})"
        )


class Sink(Protocol):
    """Somewhere events go: one `send` per notification, raising `SinkError` when not delivered."""

    @property
    def name(self) -> str:
        """The configured name, unique among sinks; outbox rows are keyed by it."""
        ...

    async def send(self, notification: Notification) -> None:
        """Deliver one notification (all its events) or raise `SinkError`; never retries."""
        ...


def safe_text(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` fit for logs and error reasons: URLs cut to their host, credentials masked."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _SPACE.sub(" ", redact_text(text)).strip()
    if len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def is_retryable_status(status: int) -> bool:
    """408, 429 and every 5xx may succeed later; other statuses will not."""
    return status in (408, 429) or 500 <= status <= 599


def classify_status(
    status: int, body: str, retry_after_header: str | None, *, now: datetime | None = None
) -> SinkError | None:
    """None for 2xx; otherwise a `SinkError` (408/429/5xx retryable, the rest permanent)."""
    if 200 <= status <= 299:
        return None
    excerpt = safe_text(body)
    reason = f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}"
    kind = status_kind(status)
    if not is_retryable_status(status):
        return SinkError(reason, retryable=False, kind=kind)
    retry_after = parse_retry_after(retry_after_header, now or utc_now())
    return SinkError(reason, retryable=True, retry_after=retry_after, kind=kind)


def status_kind(status: int) -> str:
    """The failure kind an HTTP status stands for."""
    if status == 429:
        return "throttled"
    if status == 408:
        return "timeout"
    return "http_5xx" if status >= 500 else "http_4xx"
