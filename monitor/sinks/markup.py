"""How text goes into a chat product's markup: escaping, the dialects, and cutting to a limit.

A `Markup` is one product's markdown dialect (escape, bold, link, log lines); `MARKDOWN`,
`LIGHT_MARKDOWN`, `QUOTED_MARKDOWN` and `SLACK_MRKDWN` are the ones our products speak.
`from_job` and `neutralise` defuse text a job controls (its name, owner, log lines), so it
cannot become a link or a tag. `truncate` cuts text to a product's limit, in UTF-8 bytes or in
characters, at a line boundary with the same "… +N more lines" marker everywhere.

What does not live here: what a message says (`monitor.sinks.content`), product JSON shapes
(one module per product).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

Unit = Literal["bytes", "chars"]


@dataclass(frozen=True, slots=True)
class Markup:
    """A product's markdown dialect: how to escape, embolden, link and quote log lines."""

    escape: Callable[[str], str]
    bold: Callable[[str], str]
    link: Callable[[str, str], str]
    code: Callable[[tuple[str, ...]], str]


def _fence(lines: tuple[str, ...]) -> str:
    return "```\n" + "\n".join(line.replace("```", "'''") for line in lines) + "\n```"


def _md_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "\\`*_[]<>|#~" else c for c in text)


_TAGS = str.maketrans({"<": "\u2039", ">": "\u203a"})
_LINKS = str.maketrans({"[": "\uff3b", "]": "\uff3d"})


def neutralise(text: str) -> str:
    """Angle brackets become look-alikes, so text cannot smuggle `<at id=all>` or tags."""
    return text.translate(_TAGS)


def from_job(text: str) -> str:
    """Text that came from a job (name, owner, queue, log line) with square brackets turned
    into look-alikes, so it cannot become a markdown link `[click](http://…)` in any product;
    tags are each product's escape's business."""
    return text.translate(_LINKS)


MARKDOWN = Markup(
    escape=_md_escape,
    bold=lambda text: f"**{text}**",
    link=lambda label, url: f"[{label}]({url})",
    code=_fence,
)
"""Markdown with backslash escapes (Discord)."""

LIGHT_MARKDOWN = Markup(
    escape=neutralise,
    bold=lambda text: f"**{text}**",
    link=lambda label, url: f"[{label}]({url})",
    code=lambda lines: _fence(tuple(neutralise(line) for line in lines)),
)
"""Markdown of products without backslash escapes (Feishu cards): only tags are neutralised."""


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


SLACK_MRKDWN = Markup(
    escape=_slack_escape,
    bold=lambda text: f"*{text}*",
    link=lambda label, url: f"<{url}|{label}>",
    code=lambda lines: _fence(tuple(_slack_escape(line) for line in lines)),
)
"""Slack's mrkdwn."""


def _quote(lines: tuple[str, ...]) -> str:
    return "\n".join(f"> {neutralise(line)}" for line in lines)


QUOTED_MARKDOWN = replace(LIGHT_MARKDOWN, code=_quote)
"""Markdown without code fences (DingTalk, WeCom): log lines become quotes."""


def size_of(text: str, unit: Unit) -> int:
    """Length of `text` in UTF-8 bytes or in characters."""
    return len(text.encode()) if unit == "bytes" else len(text)


def _cut(text: str, limit: int, unit: Unit) -> str:
    if unit == "chars":
        return text[: max(limit, 0)]
    return text.encode()[: max(limit, 0)].decode("utf-8", errors="ignore")


def truncate(text: str, limit: int, unit: Unit) -> str:
    """`text` cut to `limit` at a line (or UTF-8) boundary, ending "… +N more lines"."""
    if size_of(text, unit) <= limit:
        return text
    lines = text.split("\n")
    for keep in range(len(lines) - 1, 0, -1):
        candidate = "\n".join([*lines[:keep], f"… +{len(lines) - keep} more lines"])
        if size_of(candidate, unit) <= limit:
            return candidate
    marker = f"… +{len(lines) - 1} more lines" if len(lines) > 1 else "… (truncated)"
    return _cut(lines[0], limit - size_of(" " + marker, unit), unit) + " " + marker
