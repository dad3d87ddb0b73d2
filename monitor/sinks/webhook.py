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

from monitor.codec import JsonDict, digest_payload, webhook_payload
from monitor.models import Notification
from monitor.redact import redact_url
from monitor.sinks.http import post


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
        self._timeout_s = timeout_s
        self._headers = dict(headers or {})
        self._secret_headers = tuple(self._headers.values())

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
        await post(
            self._session,
            self._url,
            body.encode(),
            headers=headers,
            timeout_s=self._timeout_s,
            secrets=(self._url, *self._secret_headers),
        )


def render(notification: Notification, project_id: str) -> JsonDict:
    """`webhook_payload` for a single event, `digest_payload` for a digest."""
    if notification.is_digest:
        return digest_payload(notification.events, notification.notification_id, project_id)
    return webhook_payload(notification.events[0], project_id)
