"""Logging setup: structlog for our own events, the stdlib loggers routed through the same chain.

`configure()` installs one processor chain (context variables, level, UTC timestamp, exception
text, the secret scrubber, a JSON or console renderer) for structlog and, through
`structlog.stdlib.ProcessorFormatter`, for stdlib loggers such as `aiohttp.access`,
`apscheduler` and `asyncio`. `add_secrets()` registers values the scrubber replaces with `***`
wherever they appear in an event: keys, values, nested containers and exception text.

What does not live here: deciding what is secret (`monitor.config.secret_values`) and
pattern-based redaction of free text (`monitor.redact`).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from monitor.redact import MASK

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_MIN_SECRET_LENGTH = 4
"""Shorter values would mask ordinary words; `monitor.redact.scrub` uses the same floor."""

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_HANDLER_MARK = "_dli_monitor_handler"


def add_secrets(values: Iterable[str]) -> None:
    """Register values that must never appear in a log line; they are replaced with `***`."""
    global _pattern
    _secrets.update(v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LENGTH)
    if _secrets:
        longest_first = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in longest_first))


def _scrub(value: object) -> object:
    """`value` with every registered secret masked; non-primitive objects become strings."""
    if _pattern is None or value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _pattern.sub(MASK, value)
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(item) for item in value]
    return _pattern.sub(MASK, str(value))


def scrub_secrets(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> MutableMapping[str, Any]:
    """Processor: mask every registered secret in the event's keys and values."""
    if _pattern is None:
        return event_dict
    return {str(_scrub(key)): _scrub(value) for key, value in event_dict.items()}


def configure(
    fmt: Literal["json", "console"] | None = None,
    level: str = "info",
    *,
    stream: TextIO | None = None,
) -> None:
    """Set up structlog and stdlib logging; safe to call again (the last call wins)."""
    stream = sys.stderr if stream is None else stream
    numeric = _LEVELS.get(level.lower())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
    if fmt is None:
        fmt = "console" if _isatty(stream) else "json"
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=_isatty(stream))
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    tail: list[Processor] = [structlog.processors.format_exc_info, scrub_secrets, renderer]
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(stream, numeric, shared, tail)


def _route_stdlib(
    stream: TextIO, level: int, shared: list[Processor], tail: list[Processor]
) -> None:
    """Send every stdlib record through the same processors, replacing our earlier handler."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
    )
    handler.setLevel(level)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))
    # "skipped: maximum number of running instances reached" is a warning for every tick a
    # slow cycle overlaps; the cycle's own summary line already says how long it took.
    logging.getLogger("apscheduler.scheduler").setLevel(max(level, logging.ERROR))


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
