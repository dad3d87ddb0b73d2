"""Microsoft Teams sink: a Workflows (Power Automate) webhook posting an Adaptive Card.

Workflows accept only Adaptive Cards inside a `message` with `attachments`. Success is
202 Accepted with an empty body (the flow was started; the card is posted afterwards) or 200;
400/401/404 (bad or rotated `sig`, deleted flow) are permanent; 429 and 5xx are retried. The
whole URL is a secret. A posted message is capped at about 28 KB.
"""

from __future__ import annotations

from typing import Any

from monitor.models import Notification
from monitor.sinks.chat import ChatSink, fit_body
from monitor.sinks.content import Message, MessageContext, Severity, build_message
from monitor.sinks.markup import neutralise, truncate

MAX_BODY_BYTES = 28 * 1024
BODY_MARGIN = 1024
MAX_LOG_BYTES = 8 * 1024
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"

_COLOUR = {
    Severity.CRITICAL: "Attention",
    Severity.WARNING: "Warning",
    Severity.INFO: "Default",
    Severity.OK: "Good",
}


def _text(message: Message) -> str:
    head = [message.body] if message.body else []
    lines = [*head, *message.summary, *(f"- {neutralise(line)}" for line in message.lines)]
    if message.more:
        lines.append(f"+{message.more} more")
    return "\n".join(lines)


def render(notification: Notification, context: MessageContext) -> dict[str, Any]:
    """The `message` with one Adaptive Card (1.4): title, facts, jobs, logs, link, footer."""
    message = build_message(notification, context)
    logs = truncate("\n".join(map(neutralise, message.log_lines)), MAX_LOG_BYTES, "bytes")

    def build(text: str) -> dict[str, Any]:
        body: list[dict[str, Any]] = [
            {
                "type": "TextBlock",
                "text": neutralise(message.title),
                "weight": "Bolder",
                "size": "Medium",
                "color": _COLOUR[message.severity],
                "wrap": True,
            }
        ]
        if message.facts:
            facts = [{"title": f.label, "value": neutralise(f.value)} for f in message.facts]
            body.append({"type": "FactSet", "facts": facts})
        if text:
            body.append({"type": "TextBlock", "text": text, "wrap": True})
        if logs:
            body.append({"type": "TextBlock", "text": logs, "fontType": "Monospace", "wrap": True})
        footer = {"type": "TextBlock", "text": message.footer, "isSubtle": True, "size": "Small"}
        body.append(footer)
        card: dict[str, Any] = {
            "$schema": CARD_SCHEMA,
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": body,
        }
        if message.link:
            card["actions"] = [
                {"type": "Action.OpenUrl", "title": "Open in DLI console", "url": message.link}
            ]
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        }

    return fit_body(build, _text(message), MAX_BODY_BYTES - BODY_MARGIN)


class TeamsSink(ChatSink):
    """Posts Adaptive Cards to one Teams Workflows webhook (2xx incl. 202 is success)."""

    product = "teams"

    def payload(self, notification: Notification, context: MessageContext) -> dict[str, Any]:
        """The rendered card message."""
        return render(notification, context)
