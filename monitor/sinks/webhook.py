"""The generic JSON webhook sink: one POST per notification.

A single event is posted as `codec.webhook_payload` (header `X-Event-Id`); a digest as
`codec.digest_payload`, `{"kind": "digest", "notification_id", "project_id", "count", "events"}`
with every event's own payload inside. Both carry `X-Notification-Id`. Receivers can
de-duplicate on `event_id` / `notification_id`, which stay the same across retries and
restarts. The URL is treated as a secret (many webhook URLs carry their token in the path or
query): it appears in no error text, log line or repr.
Chat products with their own payloads and "errors inside a 200" get their own modules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import aiohttp

from monitor import __version__
from monitor.codec import JsonDict, digest_payload, webhook_payload
from monitor.models import Notification
from monitor.redact import redact_url
from monitor.sinks.base import SinkError, classify_status

USER_AGENT = f"dli-batch-monitor/{__version__}"
MAX_BODY_BYTES = 64 * 1024
"""How much of a response body is read; only an excerpt ever reaches an error reason."""


class WebhookSink:
    """POSTs each notification as JSON to one URL; raises `SinkError`, never retries itself."""

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

    def render(self, notification: Notification) -> JsonDict:
        """The JSON body for a notification: one event's payload, or a digest of several."""
        return render(notification, self._project_id)

    async def send(self, notification: Notification) -> None:
        """POST the notification; 2xx returns, anything else raises `SinkError`."""
        body = json.dumps(self.render(notification), ensure_ascii=False)
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "X-Notification-Id": notification.notification_id,
        }
        if not notification.is_digest:
            headers["X-Event-Id"] = notification.events[0].event_id
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


def render(notification: Notification, project_id: str) -> JsonDict:
    """`webhook_payload` for a single event, `digest_payload` for a digest."""
    if notification.is_digest:
        return digest_payload(notification.events, notification.notification_id, project_id)
    return webhook_payload(notification.events[0], project_id)
