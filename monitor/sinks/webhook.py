"""The generic JSON webhook sink: one POST per notification.

A single event is posted as `codec.webhook_payload` (header `X-Event-Id`); a digest as
`codec.digest_payload`, `{"kind": "digest", "notification_id", "project_id", "count", "events"}`
with every event's own payload inside (`project_id` per event from the project it names; the
digest's own `project`/`project_id` only when all its events share one). Both carry
`X-Notification-Id`. Receivers can de-duplicate on `event_id` / `notification_id`, which stay
the same across retries and restarts. With a `secret`, each attempt is signed
(`X-Signature-Timestamp`, `X-Signature: sha256=HMAC(secret, "<timestamp>." + body)`). With
replicas sharing PostgreSQL state, `X-DLI-Monitor-Instance` names the replica that sent the
POST (its lease holder id; outside the signature, which covers the body only). The URL
is treated as a secret (many webhook URLs carry their token in the path or query): it appears
in no error text, log line or repr.
Chat products with their own payloads and "errors inside a 200" get their own modules.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from datetime import datetime

import aiohttp

from monitor.codec import JsonDict, digest_payload, webhook_payload
from monitor.models import Clock, Notification, utc_now
from monitor.redact import redact_url
from monitor.sinks.base import ProjectIds, project_lookup
from monitor.sinks.http import post

INSTANCE_HEADER = "X-DLI-Monitor-Instance"
"""Names the replica that sent a POST (the lease holder id), when replicas share state."""


class WebhookSink:
    """POSTs each notification as JSON to one URL; raises `SinkError`, never retries itself."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        session: aiohttp.ClientSession,
        project_id: ProjectIds,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        secret: str | None = None,
        clock: Clock = utc_now,
        instance: str | None = None,
    ) -> None:
        """`instance` (the sending replica's lease holder id) goes out as a header."""
        self._name = name
        self._instance = instance
        self._secret = secret
        self._clock = clock
        self._url = url
        self._session = session
        self._project_id = project_lookup(project_id)
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

    def preview(self, notification: Notification) -> JsonDict:
        """The JSON body a send would post (before the signature headers); no I/O."""
        return self.render(notification)

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
        if self._instance:
            headers[INSTANCE_HEADER] = self._instance
        if self._secret:
            headers.update(signature_headers(self._secret, body.encode(), self._clock()))
        await post(
            self._session,
            self._url,
            body.encode(),
            headers=headers,
            timeout_s=self._timeout_s,
            secrets=(self._url, *self._secret_headers, *([self._secret] if self._secret else [])),
        )


def signature_headers(secret: str, body: bytes, now: datetime) -> dict[str, str]:
    """HMAC-SHA256 over `"<unix seconds>." + body`, computed per attempt.

    Receivers recompute it with the shared secret and reject stale timestamps (replays):
    `X-Signature-Timestamp: <unix seconds>`, `X-Signature: sha256=<hex>`.
    """
    stamp = str(int(now.timestamp()))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Signature-Timestamp": stamp, "X-Signature": f"sha256={digest}"}


def render(notification: Notification, project_id: ProjectIds | Callable[[str], str]) -> JsonDict:
    """`webhook_payload` for a single event, `digest_payload` for a digest.

    `project_id` gives each project's DLI id: one id, a mapping, or a lookup by project name."""
    lookup = project_id if callable(project_id) else project_lookup(project_id)
    if notification.is_digest:
        return digest_payload(notification.events, notification.notification_id, lookup)
    event = notification.events[0]
    return webhook_payload(event, lookup(event.project))
