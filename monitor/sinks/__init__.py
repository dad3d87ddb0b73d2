"""Alert sinks: where events go once the dispatcher takes them from the outbox.

`base` holds the contract (`Sink`, `SinkError`, `classify_status`); each other module is one
family of destinations (`webhook`, `console`; chat products later). Which config `type` maps to
which class is decided by the app, not here, so sinks never import the config.
"""

from monitor.retry_after import parse_retry_after
from monitor.sinks.base import Sink, SinkError, classify_status
from monitor.sinks.console import ConsoleSink
from monitor.sinks.webhook import WebhookSink

__all__ = [
    "ConsoleSink",
    "Sink",
    "SinkError",
    "WebhookSink",
    "classify_status",
    "parse_retry_after",
]
