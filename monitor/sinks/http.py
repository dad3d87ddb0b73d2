"""The one HTTP POST every sink uses: send, read a bounded answer, classify, scrub.

`post` sends a body, reads at most `MAX_BODY_BYTES` of the answer and hands status, body text,
headers and the time to the caller's pure `classify`; timeouts and connection errors become
retryable `SinkError`s naming only the host. Every known secret (URL token, signing secret,
auth header) is scrubbed from the reason, and the error is raised outside the `except` blocks,
so the aiohttp exception (whose text can hold the full URL) never rides along as `__context__`.
Retries are the dispatcher's business, not this module's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime

import aiohttp
from yarl import URL

from monitor import __version__
from monitor.models import Clock, utc_now
from monitor.redact import MASK, redact_url, scrub
from monitor.sinks.base import SinkError, classify_status

USER_AGENT = f"dli-batch-monitor/{__version__}"
MAX_BODY_BYTES = 64 * 1024
"""How much of a response body is read; only an excerpt ever reaches an error reason."""

Classifier = Callable[[int, str, Mapping[str, str], datetime], SinkError | None]
"""`classify(status, body_text, headers, now)`: None when delivered, else the error."""


def by_status(
    status: int, body: str, headers: Mapping[str, str], now: datetime
) -> SinkError | None:
    """The plain HTTP rule: 2xx delivered, 408/429/5xx retryable (with Retry-After), else final."""
    return classify_status(status, body, headers.get("Retry-After"), now=now)


async def post(
    session: aiohttp.ClientSession,
    url: str | URL,
    data: bytes,
    *,
    headers: Mapping[str, str],
    timeout_s: float,
    classify: Classifier = by_status,
    clock: Clock = utc_now,
    secrets: Collection[str] = (),
) -> None:
    """POST `data`; return when `classify` says delivered, else raise a scrubbed `SinkError`."""
    shown = redact_url(str(url))
    error: SinkError | None
    try:
        async with session.post(
            url,
            data=data,
            headers={"User-Agent": USER_AGENT, **headers},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as response:
            raw = await response.content.read(MAX_BODY_BYTES)
            error = classify(
                response.status, raw.decode("utf-8", errors="replace"), response.headers, clock()
            )
    except TimeoutError:
        error = SinkError(
            f"no answer from {shown} within {timeout_s:g}s", retryable=True, kind="timeout"
        )
    except aiohttp.ClientError as exc:
        kind = "tls" if isinstance(exc, aiohttp.ClientSSLError) else "connection"
        error = SinkError(f"{type(exc).__name__} talking to {shown}", retryable=True, kind=kind)
    if error is not None:
        reason = scrub(error.reason, set(secrets))
        if reason != error.reason or MASK in reason:
            error = SinkError(
                reason, retryable=error.retryable, retry_after=error.retry_after, kind=error.kind
            )
        raise error
