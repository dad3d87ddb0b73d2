"""The generic JSON webhook sink: one POST of `codec.webhook_payload` per event.

Receivers can de-duplicate on the `event_id` (also sent as the `X-Event-Id` header), which
stays the same across retries and restarts. The URL is treated as a secret (many webhook URLs
carry their token in the path or query): it appears in no error text, log line or repr.
Chat products with their own payloads and "errors inside a 200" get their own modules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import aiohttp

from monitor import __version__
from monitor.codec import webhook_payload
from monitor.models import Event
from monitor.redact import redact_url
from monitor.sinks.base import SinkError, classify_status

USER_AGENT = f"dli-batch-monitor/{__version__}"
MAX_BODY_BYTES = 64 * 1024
"""How much of a response body is read; only an excerpt ever reaches an error reason."""


class WebhookSink:
    """POSTs each event as JSON to one URL; raises `SinkError`, never retries by itself."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        session: aiohttp.ClientSession,
        project_id: str,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._name = name
        self._url = url
        self._session = session
        self._project_id = project_id
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._timeout_s = timeout_s
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}

    @property
    def name(self) -> str:
        """The configured sink name."""
        return self._name

    def __repr__(self) -> str:
        return f"WebhookSink(name={self._name!r}, url={redact_url(self._url)!r})"

    async def send(self, event: Event) -> None:
        """POST the event; 2xx returns, anything else raises `SinkError`."""
        body = json.dumps(webhook_payload(event, self._project_id), ensure_ascii=False)
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "X-Event-Id": event.event_id,
        }
        error: SinkError | None
        try:
            async with self._session.post(
                self._url, data=body.encode(), headers=headers, timeout=self._timeout
            ) as response:
                raw = await response.content.read(MAX_BODY_BYTES)
                error = classify_status(
                    response.status,
                    raw.decode("utf-8", errors="replace"),
                    response.headers.get("Retry-After"),
                )
        except TimeoutError:
            error = SinkError(
                f"no answer from {redact_url(self._url)} within {self._timeout_s:g}s",
                retryable=True,
            )
        except aiohttp.ClientError as exc:
            error = SinkError(
                f"{type(exc).__name__} talking to {redact_url(self._url)}", retryable=True
            )
        # Raised outside the `except` blocks on purpose: the original aiohttp exception (whose
        # text can hold the full URL) must not ride along as `__context__`.
        if error is not None:
            raise error
