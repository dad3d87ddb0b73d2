"""Slack incoming-webhook sink: Block Kit header, one mrkdwn section and a context footer.

Success is HTTP 200 with the plain-text body `ok` and nothing else. Errors are plain-text
strings with a 4xx status (`invalid_payload`, `channel_not_found`, `no_service`: permanent);
429 carries `Retry-After`; 5xx is retried. A section's text is capped at 3000 characters.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from monitor.models import Notification
from monitor.sinks.base import SinkError, classify_status, safe_text
from monitor.sinks.chat import ChatSink
from monitor.sinks.content import MessageContext, body_text, build_message
from monitor.sinks.markup import SLACK_MRKDWN, truncate

MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150


def render(notification: Notification, context: MessageContext) -> dict[str, Any]:
    """`text` (the notification fallback) plus header, section and context blocks."""
    message = build_message(notification, context)
    title = truncate(message.title, MAX_HEADER_CHARS, "chars")
    section = truncate(body_text(message, SLACK_MRKDWN), MAX_SECTION_CHARS, "chars")
    return {
        "text": SLACK_MRKDWN.escape(title),  # the notification fallback is read as mrkdwn
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title}},
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": message.footer}]},
        ],
    }


def classify(status: int, body: str, headers: Mapping[str, str], now: datetime) -> SinkError | None:
    """None only for 200 `ok`; HTTP classification otherwise (429 honours Retry-After)."""
    error = classify_status(status, body, headers.get("Retry-After"), now=now)
    if error is not None or body.strip() == "ok":
        return error
    return SinkError(
        f"HTTP {status} but not ok: {safe_text(body)}", retryable=False, kind="vendor_error"
    )


class SlackSink(ChatSink):
    """Posts Block Kit messages to one Slack incoming webhook."""

    product = "slack"

    def payload(self, notification: Notification, context: MessageContext) -> dict[str, Any]:
        """The rendered message."""
        return render(notification, context)

    def classify(
        self, status: int, body: str, headers: Mapping[str, str], now: datetime
    ) -> SinkError | None:
        """Slack's classification."""
        return classify(status, body, headers, now)
