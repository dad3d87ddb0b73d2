"""Alert sinks: where events go once the dispatcher takes them from the outbox.

`base` holds the contract (`Sink`, `SinkError`, `classify_status`); each other module is one
family of destinations (`webhook`, `console`, and one module per chat product, sharing
`content` for what a message says, `markup` for how text is escaped and cut, and `chat` for how
it is posted). Which config `type` maps to which class is decided by the app, not here, so sinks
never import the config.
"""

from monitor.retry_after import parse_retry_after
from monitor.sinks.alertmanager import AlertmanagerSink
from monitor.sinks.base import Sink, SinkError, classify_status
from monitor.sinks.console import ConsoleSink
from monitor.sinks.content import MessageContext
from monitor.sinks.dingtalk import DingTalkSink
from monitor.sinks.discord import DiscordSink
from monitor.sinks.feishu import FeishuSink
from monitor.sinks.slack import SlackSink
from monitor.sinks.teams import TeamsSink
from monitor.sinks.webhook import WebhookSink
from monitor.sinks.wecom import WeComSink

DEFAULT_RATE_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "dingtalk": (None, 18),
    "wecom": (None, 18),
    "feishu": (4, 90),
    "slack": (1, None),
    "teams": (1, None),
    "discord": (1, None),
    "webhook": (None, None),
    "alertmanager": (None, None),
    "console": (None, None),
}
"""Sink type → (per second, per minute) default budget: the vendor's published limit with a
margin for clock differences (DingTalk/WeCom 20/min, Feishu 5/s and 100/min, Slack 1/s)."""

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "AlertmanagerSink",
    "ConsoleSink",
    "DingTalkSink",
    "DiscordSink",
    "FeishuSink",
    "MessageContext",
    "Sink",
    "SinkError",
    "SlackSink",
    "TeamsSink",
    "WeComSink",
    "WebhookSink",
    "classify_status",
    "parse_retry_after",
]
