"""Feishu / Lark custom bot sink: an interactive card, optionally signed.

Failures arrive as HTTP 200 with `code` != 0 (key on `code`, never on the legacy
`StatusCode`): 11232 is frequency limiting (retried); 19021 (signature or timestamp), 19022
(IP allow-list), 19024 (keywords), 19001 (token), 9499/19002 (bad request) are permanent.
A signature (`timestamp` + `sign` body fields) is computed for every attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import aiohttp

from monitor.models import Clock, Notification, utc_now
from monitor.sinks.base import SinkError
from monitor.sinks.chat import ChatSink, fit_body, vendor_code_error
from monitor.sinks.content import MessageContext, Severity, body_text, build_message
from monitor.sinks.markup import LIGHT_MARKDOWN
from monitor.sinks.signing import feishu_body_fields, feishu_timestamp

MAX_BODY_BYTES = 20 * 1024
"""Feishu's request body cap (20 KB)."""
BODY_MARGIN = 600
"""Room for the signature fields and JSON escaping."""
THROTTLED: Mapping[int, float | None] = {11232: None}

_TEMPLATE = {
    Severity.CRITICAL: "red",
    Severity.WARNING: "orange",
    Severity.INFO: "blue",
    Severity.OK: "green",
}


def render(notification: Notification, context: MessageContext) -> dict[str, Any]:
    """The `interactive` card (header coloured by severity, one markdown element)."""
    message = build_message(notification, context)

    def build(text: str) -> dict[str, Any]:
        return {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {
                    "title": {"tag": "plain_text", "content": message.title},
                    "template": _TEMPLATE[message.severity],
                },
                "elements": [
                    {"tag": "markdown", "content": text},
                    {"tag": "note", "elements": [{"tag": "plain_text", "content": message.footer}]},
                ],
            },
        }

    return fit_body(build, body_text(message, LIGHT_MARKDOWN), MAX_BODY_BYTES - BODY_MARGIN)


def classify(status: int, body: str, headers: Mapping[str, str], now: datetime) -> SinkError | None:
    """None for `code` 0; 11232 retryable; every other code permanent."""
    return vendor_code_error(
        status, body, headers, now, code_key="code", message_key="msg", throttled=THROTTLED
    )


class FeishuSink(ChatSink):
    """Posts cards to one Feishu/Lark custom bot."""

    product = "feishu"

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
    ) -> None:
        super().__init__(
            name, url, session=session, context=context, timeout_s=timeout_s, clock=clock
        )
        self._use_secret(secret)

    def payload(self, notification: Notification, context: MessageContext) -> dict[str, Any]:
        """The rendered card."""
        return render(notification, context)

    def classify(
        self, status: int, body: str, headers: Mapping[str, str], now: datetime
    ) -> SinkError | None:
        """Feishu's classification."""
        return classify(status, body, headers, now)

    def signed(self, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The card with `timestamp` and `sign` for this attempt when signing."""
        if not self._secret:
            return payload
        return {**feishu_body_fields(self._secret, feishu_timestamp(now)), **payload}
