"""Discord webhook sink: one embed, posted with `?wait=true` so failures are reported.

Success is 200 with the created message (204 without `wait`). 429 answers carry
`retry_after` (seconds, float) in the JSON body and `Retry-After`; 404 code 10015 "Unknown
Webhook" and 400 code 50035 "Invalid Form Body" are permanent. Mentions are disabled so a
job name can never ping anyone. Embed description ≤ 4096 characters, all embed text ≤ 6000.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from yarl import URL

from monitor.models import Notification
from monitor.sinks.base import SinkError, classify_status
from monitor.sinks.chat import ChatSink, parse_json
from monitor.sinks.content import MessageContext, Severity, body_text, build_message
from monitor.sinks.markup import MARKDOWN
from monitor.sinks.markup import truncate as cut

MAX_DESCRIPTION_CHARS = 4096
MAX_TITLE_CHARS = 256
MAX_FOOTER_CHARS = 2048

_COLOUR = {
    Severity.CRITICAL: 0xE74C3C,
    Severity.WARNING: 0xE67E22,
    Severity.INFO: 0x3498DB,
    Severity.OK: 0x2ECC71,
}


def render(notification: Notification, context: MessageContext) -> dict[str, Any]:
    """One embed (title, coloured bar, markdown description, footer); no mentions."""
    message = build_message(notification, context)
    embed: dict[str, Any] = {
        "title": cut(message.title, MAX_TITLE_CHARS, "chars"),
        "description": cut(body_text(message, MARKDOWN), MAX_DESCRIPTION_CHARS, "chars"),
        "color": _COLOUR[message.severity],
        "footer": {"text": cut(message.footer, MAX_FOOTER_CHARS, "chars")},
    }
    if message.link:
        embed["url"] = message.link
    return {"embeds": [embed], "allowed_mentions": {"parse": []}}


def classify(status: int, body: str, headers: Mapping[str, str], now: datetime) -> SinkError | None:
    """None for 2xx; 429 retryable after the body's `retry_after`; other 4xx permanent."""
    error = classify_status(status, body, headers.get("Retry-After"), now=now)
    if error is None or status != 429:
        return error
    data = parse_json(body) or {}
    wait = data.get("retry_after")
    if isinstance(wait, int | float) and not isinstance(wait, bool) and math.isfinite(wait):
        return SinkError(
            error.reason, retryable=True, retry_after=max(0.0, float(wait)), kind="throttled"
        )
    return error


def with_wait(url: str) -> URL:
    """The webhook URL with `wait=true`, so Discord reports messages it could not save."""
    return URL(url).update_query(wait="true")


class DiscordSink(ChatSink):
    """Posts embeds to one Discord webhook."""

    product = "discord"

    def payload(self, notification: Notification, context: MessageContext) -> dict[str, Any]:
        """The rendered embed."""
        return render(notification, context)

    def classify(
        self, status: int, body: str, headers: Mapping[str, str], now: datetime
    ) -> SinkError | None:
        """Discord's classification."""
        return classify(status, body, headers, now)

    def target(self, now: datetime) -> str | URL:
        """The webhook URL with `?wait=true`."""
        return with_wait(self._url)
