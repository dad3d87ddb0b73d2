"""WeCom (企业微信) group robot sink: a markdown message of at most 4096 bytes.

The key in the URL is the only credential (WeCom robots do not sign). Failures arrive as HTTP
200 with `errcode` != 0: 45009 is the frequency limit (retried after a minute), -1 is "system
busy" (retried); 40058 (too long), 93000 (bad key) and the rest are permanent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from monitor.models import Notification
from monitor.sinks.base import SinkError
from monitor.sinks.chat import ChatSink, vendor_code_error
from monitor.sinks.content import MessageContext, Severity, body_text, build_message
from monitor.sinks.markup import QUOTED_MARKDOWN, truncate

MAX_CONTENT_BYTES = 4096
"""WeCom's cap on `markdown.content`, in UTF-8 bytes (errcode 40058 beyond it)."""
THROTTLED: Mapping[int, float | None] = {45009: 60.0}

_COLOUR = {
    Severity.CRITICAL: "warning",
    Severity.WARNING: "warning",
    Severity.INFO: "comment",
    Severity.OK: "info",
}


def render(notification: Notification, context: MessageContext) -> dict[str, Any]:
    """The `markdown` message, its content cut to 4096 bytes."""
    message = build_message(notification, context)
    title = QUOTED_MARKDOWN.escape(message.title)
    head = f'### <font color="{_COLOUR[message.severity]}">{title}</font>\n'
    tail = f"\n{message.footer}"
    room = MAX_CONTENT_BYTES - len(head.encode()) - len(tail.encode())
    content = head + truncate(body_text(message, QUOTED_MARKDOWN), room, "bytes") + tail
    return {"msgtype": "markdown", "markdown": {"content": content}}


def classify(status: int, body: str, headers: Mapping[str, str], now: datetime) -> SinkError | None:
    """None for `errcode` 0; 45009 retryable after 60 s; -1 retryable; others permanent."""
    return vendor_code_error(
        status,
        body,
        headers,
        now,
        code_key="errcode",
        message_key="errmsg",
        throttled=THROTTLED,
        retryable={-1},
    )


class WeComSink(ChatSink):
    """Posts markdown messages to one WeCom group robot."""

    product = "wecom"

    def payload(self, notification: Notification, context: MessageContext) -> dict[str, Any]:
        """The rendered markdown message."""
        return render(notification, context)

    def classify(
        self, status: int, body: str, headers: Mapping[str, str], now: datetime
    ) -> SinkError | None:
        """WeCom's classification."""
        return classify(status, body, headers, now)
