"""DingTalk custom robot sink: a markdown message, optional signing, optional keywords.

Failures arrive as HTTP 200 with `errcode` != 0: 130101 (or 410100) means "sent too fast" and
the robot is blocked for 10 minutes, so it is retried no sooner than that; 310000 (signature,
keyword, timestamp or IP allow-list) and 460101 (body over 20 000 bytes) are permanent. The
signature goes in the query string and is computed for every attempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import aiohttp
from yarl import URL

from monitor.models import Clock, Notification, utc_now
from monitor.sinks.base import SinkError
from monitor.sinks.chat import ChatSink, fit_body, vendor_code_error
from monitor.sinks.content import MessageContext, body_text, build_message
from monitor.sinks.markup import QUOTED_MARKDOWN
from monitor.sinks.signing import dingtalk_query_suffix, dingtalk_timestamp

MAX_BODY_BYTES = 20_000
"""DingTalk rejects bodies of 20 000 bytes or more (errcode 460101)."""
BODY_MARGIN = 500
THROTTLED: Mapping[int, float | None] = {130101: 600.0, 410100: 600.0}
"""Rate-limit codes and the wait they imply (the robot is blocked for 10 minutes)."""


def render(
    notification: Notification, context: MessageContext, keywords: Sequence[str] = ()
) -> dict[str, Any]:
    """The `markdown` message; a keyword is appended when none is in the text already."""
    message = build_message(notification, context)
    text = body_text(message, QUOTED_MARKDOWN)
    tail = f"\n\n{message.footer}"
    if keywords and not any(k in message.title + text + message.footer for k in keywords):
        tail += f" · {keywords[0]}"

    def build(body: str) -> dict[str, Any]:
        head = f"#### {QUOTED_MARKDOWN.escape(message.title)}\n\n"
        markdown = head + body.replace("\n", "\n\n") + tail
        return {"msgtype": "markdown", "markdown": {"title": message.title, "text": markdown}}

    return fit_body(build, text, MAX_BODY_BYTES - BODY_MARGIN)


def classify(status: int, body: str, headers: Mapping[str, str], now: datetime) -> SinkError | None:
    """None for `errcode` 0; throttling retryable after 10 min; other codes permanent."""
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


class DingTalkSink(ChatSink):
    """Posts markdown messages to one DingTalk robot."""

    product = "dingtalk"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        session: aiohttp.ClientSession,
        context: MessageContext,
        timeout_s: float = 10.0,
        clock: Clock = utc_now,
        secret: str | None = None,
        keywords: Sequence[str] = (),
    ) -> None:
        super().__init__(
            name, url, session=session, context=context, timeout_s=timeout_s, clock=clock
        )
        self._use_secret(secret)
        self._keywords = tuple(keywords)

    def payload(self, notification: Notification, context: MessageContext) -> dict[str, Any]:
        """The rendered markdown message."""
        return render(notification, context, self._keywords)

    def classify(
        self, status: int, body: str, headers: Mapping[str, str], now: datetime
    ) -> SinkError | None:
        """DingTalk's classification."""
        return classify(status, body, headers, now)

    def target(self, now: datetime) -> str | URL:
        """The robot URL, with `timestamp` and `sign` for this attempt when signing."""
        if not self._secret:
            return self._url
        base = URL(self._url)
        suffix = dingtalk_query_suffix(self._secret, dingtalk_timestamp(now))
        if not base.raw_query_string:
            suffix = "?" + suffix.removeprefix("&")
        # Built by hand and marked encoded: the signature must be percent-encoded exactly once.
        return URL(str(base) + suffix, encoded=True)
