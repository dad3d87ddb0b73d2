"""The status page's HTML building blocks: safe text, links, tables, sections, the document.

Every value that came from outside (job names, ids, queues, vendors' answers) goes through
`text()`: control and bidi characters replaced, long values cut, then escaped for content and
quoted attributes alike. `document()` wraps a body in the page frame: `lang`, a title, the
stylesheet and icon, `<meta http-equiv="refresh">`, a skip link, and the banner, navigation,
main and footer landmarks. No script and no inline style anywhere, so the server's strict
Content-Security-Policy holds. Links are relative (`Where`), so the page also works behind a
path prefix, and keep the reader's choice to stop the page reloading itself (`?refresh=off`).

What does not live here: what the pages say (`monitor.status_html`), the data
(`monitor.status_page`), the headers and routes (`monitor.server`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from urllib.parse import quote

from monitor.config.durations import format_duration
from monitor.explain_rules import utc_text

TITLE = "DLI batch monitor"
MAX_SHOWN = 120
"""Longest outside value shown in a table cell, in characters (the job page shows more)."""
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Control characters and bidi overrides: never rendered (they could reorder what is shown)."""


def text(value: object, limit: int = MAX_SHOWN) -> str:
    """Outside text made safe to place in HTML content or a quoted attribute."""
    raw = _UNSAFE.sub("\ufffd", str(value))
    if len(raw) > limit:
        raw = raw[: limit - 1] + "\u2026"
    return html.escape(raw, quote=True)


PAUSE = "refresh=off"
"""The query that turns the page's own reloading off (WCAG 2.2.1: the user can stop it)."""


@dataclass(frozen=True, slots=True)
class Where:
    """Where a page is and whether it reloads itself: every internal link is built from it."""

    root: str
    """The way back to `/`: `""` on `/`, `"../"` on `/jobs/{job}`."""
    here: str
    """This page relative to its own directory: `./`, or the job's quoted path segment."""
    refresh_s: float
    paused: bool = False
    """The reader turned reloading off (`?refresh=off`); links keep that choice."""

    def href(self, path: str) -> str:
        """A link to another page of the monitor (`path` relative to `/`), escaped."""
        target = f"{self.root}{path}" or "./"
        return text(f"{target}?{PAUSE}" if self.paused else target, 4096)


def job_link(where: Where, job_id: str, label: str | None = None) -> str:
    """A link to a job's page (`label` defaults to its id)."""
    href = where.href(f"jobs/{quote(job_id, safe='')}")
    return f'<a href="{href}">{text(label if label else job_id)}</a>'


def when(moment: datetime | None) -> str:
    """A time as the page shows it (UTC, to the second), in a `<time>` element."""
    if moment is None:
        return "never"
    return f'<time datetime="{moment.isoformat()}">{utc_text(moment)}</time>'


def span(seconds: float | None) -> str:
    """A duration, rounded to the second (`2h5m3s`)."""
    return "\u2014" if seconds is None else format_duration(max(0, round(seconds)))


def badge(word: str, kind: str) -> str:
    """A short status word with its colour class (the word itself carries the meaning)."""
    return f'<span class="badge {kind}">{text(word)}</span>'


def table(
    caption: str, head: Sequence[str], rows: Iterable[str], *, foot: str = "", empty: str = ""
) -> str:
    """A table with a caption and column headers; `rows` are ready `<tr>` strings."""
    body = "".join(rows)
    if not body and empty:
        return f'<p class="empty">{empty}</p>'
    cols = "".join(f'<th scope="col">{h}</th>' for h in head)
    tfoot = f"<tfoot>{foot}</tfoot>" if foot else ""
    return (
        f'<div class="scroll"><table><caption>{caption}</caption>'
        f"<thead><tr>{cols}</tr></thead><tbody>{body}</tbody>{tfoot}</table></div>"
    )


def row(first: str, *cells: str, numeric: Sequence[int] = ()) -> str:
    """A body row: `first` as the row header, then data cells (`numeric`: right-aligned)."""
    tds = "".join(
        f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
        for i, c in enumerate(cells)
    )
    return f'<tr><th scope="row">{first}</th>{tds}</tr>'


def section(anchor: str, heading: str, body: str) -> str:
    """A landmark region with its heading."""
    return (
        f'<section id="{anchor}" aria-labelledby="{anchor}-h">'
        f'<h2 id="{anchor}-h">{heading}</h2>{body}</section>'
    )


def document(
    title: str,
    body: str,
    *,
    where: Where,
    at: datetime,
    nav: Sequence[tuple[str, str]] = (),
) -> str:
    """The whole page: head (reload, stylesheet, icon), banner, navigation, main, footer."""
    links = "".join(f'<li><a href="{href}">{label}</a></li>' for href, label in nav)
    navigation = f'<nav aria-label="Sections"><ul>{links}</ul></nav>' if nav else ""
    root, here = where.root, text(where.here, 4096)
    if where.paused:
        reload = f'Reloading is off. <a href="{here}">Reload every {span(where.refresh_s)}</a>.'
    else:
        reload = (
            f"This page reloads every {span(where.refresh_s)}."
            f' <a href="{here}?{PAUSE}">Stop reloading</a>.'
        )
    meta = "" if where.paused else f'<meta http-equiv="refresh" content="{round(where.refresh_s)}">'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}'
        f"<title>{title} \u00b7 {TITLE}</title>"
        f'<link rel="stylesheet" href="{root}static/status.css">'
        f'<link rel="icon" href="{root}static/favicon.svg" type="image/svg+xml"></head><body>'
        '<a class="skip" href="#main">Skip to content</a>'
        f'<header><p class="brand"><a href="{where.href("")}">{TITLE}</a></p>'
        f'<p class="meta">As of {when(at)}. {reload}</p></header>{navigation}'
        f'<main id="main">{body}</main>'
        f'<footer><p>Read-only. Also: <a href="{root}metrics">Prometheus metrics</a>,'
        f' <a href="{root}api/status">status as JSON</a>.</p></footer></body></html>\n'
    )


ASSETS = {"status.css": "text/css", "favicon.svg": "image/svg+xml"}
"""The files under `monitor/static/` (package data) the pages load, with their types."""
_LOADED: dict[str, bytes] = {}


def asset(name: str) -> tuple[bytes, str] | None:
    """A file the pages load, read once (None: not one of `ASSETS`)."""
    content_type = ASSETS.get(name)
    if content_type is None:
        return None
    if name not in _LOADED:
        _LOADED[name] = files("monitor").joinpath("static", name).read_bytes()
    return _LOADED[name], content_type
