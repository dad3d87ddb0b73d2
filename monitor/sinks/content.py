"""The neutral content of a chat message: what an on-call person needs, before any markup.

`build_message(notification, context)` turns one notification (a single event or a digest)
into a `Message`: title, severity, facts (job, queue, project, transition and how long ago,
duration, owner, job id, app id), the last log lines (redacted again here), a DLI console link
(of the event's project, in its region) and a footer with the event id. A queue is named
`project · queue` for a project of a `dli:` list; the single form's project (`default`) goes
unnamed, so its messages read as they always did. Each chat module turns a `Message` into its
product's JSON; `body_text` writes a message's body in one product's `Markup`.

What does not live here: the markup dialects, escaping of job text and `truncate`
(`monitor.sinks.markup`; re-exported here for the callers that import them from this module),
product JSON shapes (one module per product) and HTTP.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from monitor.models import DEFAULT_PROJECT, Event, EventKind, Notification
from monitor.redact import redact_text
from monitor.sinks.markup import (
    LIGHT_MARKDOWN,
    MARKDOWN,
    QUOTED_MARKDOWN,
    SLACK_MRKDWN,
    Markup,
    Unit,
    from_job,
    neutralise,
    size_of,
    truncate,
)

if TYPE_CHECKING:
    from monitor.sinks.templates import MessageTemplates

__all__ = [
    "CONSOLE_URL",
    "LIGHT_MARKDOWN",
    "MARKDOWN",
    "QUOTED_MARKDOWN",
    "SLACK_MRKDWN",
    "Fact",
    "Markup",
    "Message",
    "MessageContext",
    "Severity",
    "Unit",
    "body_text",
    "build_message",
    "console_link",
    "format_duration",
    "from_job",
    "neutralise",
    "place",
    "severity_of",
    "size_of",
    "streak_text",
    "transition_text",
    "truncate",
]

CONSOLE_URL = "https://console.huaweicloud.com/dli/?region={region}#/main/jobs/spark"
"""The DLI console's Spark job list for one region."""


class Severity(StrEnum):
    """How loud a message is; products map it to a colour."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"
    OK = "ok"


@dataclass(frozen=True, slots=True)
class MessageContext:
    """What a message needs beyond the events: the console link, limits and the time of sending.

    `now` is set by the sink right before rendering (so "how long ago" is relative to the
    send); render functions stay pure because they only read it from here. `templates` are
    the sink's own title/body templates (`monitor.sinks.templates`), if it has any.
    `console_urls` holds each project's console link by project name; `console_url` is the
    link of a project it does not list.
    """

    console_url: str | None = None
    digest_jobs: int = 10
    log_lines: int = 5
    now: datetime | None = None
    templates: MessageTemplates | None = None
    console_urls: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_endpoint(
        cls, endpoint: str, *, digest_jobs: int = 10, log_lines: int = 5
    ) -> MessageContext:
        """A context whose console link uses the region of a `dli.<region>.…` endpoint."""
        return cls(console_link(endpoint), digest_jobs=digest_jobs, log_lines=log_lines)

    def at(self, now: datetime) -> MessageContext:
        """This context with the time of sending set."""
        return replace(self, now=now)

    def with_templates(self, templates: MessageTemplates | None) -> MessageContext:
        """This context with a sink's own templates (None or empty: the built-in message)."""
        return replace(self, templates=templates or None)

    def link_for(self, events: tuple[Event, ...]) -> str | None:
        """The console link of the events' project(s): None when they point to several."""
        links = {self.console_urls.get(e.project, self.console_url) for e in events}
        return links.pop() if len(links) == 1 else None


@dataclass(frozen=True, slots=True)
class Fact:
    """One labelled value (`Queue: etl_q`)."""

    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Message:
    """Everything a chat message says, product-neutral; `lines` are a digest's job lines.

    `body` is a user template's text (already in the product's markup); when set it replaces
    facts, summary, lines and log lines.
    """

    title: str
    severity: Severity
    facts: tuple[Fact, ...]
    log_lines: tuple[str, ...]
    summary: tuple[str, ...]
    lines: tuple[str, ...]
    more: int
    link: str | None
    footer: str
    body: str = ""


def console_link(endpoint: str, region: str | None = None) -> str | None:
    """The DLI console URL for a project at `https://dli.<region>.myhuaweicloud.com`.

    `region` (the project's, when configured) wins over the one in the host; an endpoint that
    is not Huawei Cloud's own (the simulator, a proxy) gets no link."""
    try:
        host = urlsplit(endpoint if "//" in endpoint else f"//{endpoint}").hostname or ""
    except ValueError:
        return None
    parts = host.split(".")
    if len(parts) >= 3 and parts[0] == "dli" and parts[2:] == ["myhuaweicloud", "com"]:
        return CONSOLE_URL.format(region=region or parts[1])
    return None


def place(event: Event) -> str:
    """Where the job runs, as messages name it: `etl`, or `prod · etl` for a listed project."""
    queue = from_job(event.queue)
    return queue if event.project == DEFAULT_PROJECT else f"{event.project} · {queue}"


def format_duration(seconds: float) -> str:
    """Compact duration: `45s`, `12m3s`, `2h5m`, `3d4h`."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def transition_text(event: Event) -> str:
    """`running → dead`, `new → dead` (first seen), `running → gone`, or a rule's wording."""
    old = "new" if event.from_state is None else event.from_state.value
    new = "gone" if event.to_state is None else event.to_state.value
    if event.kind is EventKind.STUCK:
        return f"stuck in {new}"
    if event.kind is EventKind.OVERDUE:
        return f"overdue in {new}"
    if event.kind is EventKind.RECOVERED:
        return f"recovered: {old} → {new}"
    return f"{old} → {new}"


def streak_text(event: Event) -> str:
    """`3rd consecutive failure of nightly_etl` from the second failure in a row on, else ''."""
    if not event.is_failure or event.streak < 2:
        return ""
    return f"{_ordinal(event.streak)} consecutive failure of {_name(event)}"


def _ordinal(number: int) -> str:
    """`1st`, `2nd`, `3rd`, `4th`, `11th`, `22nd`."""
    suffix = "th" if 10 <= number % 100 <= 20 else _SUFFIXES.get(number % 10, "th")
    return f"{number}{suffix}"


_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}


def severity_of(events: tuple[Event, ...]) -> Severity:
    """Critical if any job failed; warning if one vanished, is stuck or overdue; ok if all
    succeeded (or recovered); else info."""
    if any(e.is_failure and e.kind is not EventKind.VANISHED for e in events):
        return Severity.CRITICAL
    warn = (EventKind.VANISHED, EventKind.STUCK, EventKind.OVERDUE)
    if any(e.kind in warn for e in events):
        return Severity.WARNING
    if events and all(e.to_state is not None and e.to_state.value == "success" for e in events):
        return Severity.OK
    return Severity.INFO


def build_message(notification: Notification, context: MessageContext) -> Message:
    """The neutral message for a single event or a digest, with the sink's templates applied."""
    if len(notification.events) == 1:
        message = _single(notification.events[0], context)
    else:
        message = _digest(notification, context)
    if context.templates is not None:
        message = context.templates.apply(notification, message, context)
    return message


def _when(event: Event) -> datetime:
    return event.job.state_since or event.job.update_time or event.observed_at


def _ago(event: Event, context: MessageContext) -> str:
    if context.now is None:
        return ""
    return f"{format_duration((context.now - _when(event)).total_seconds())} ago"


def _name(event: Event) -> str:
    return from_job(event.job.name) or "(unnamed)"


def _single(event: Event, context: MessageContext) -> Message:
    job = event.job
    ago = _ago(event, context)
    transition = transition_text(event)
    facts = [Fact("Job", _name(event)), Fact("Queue", from_job(job.queue))]
    if event.project != DEFAULT_PROJECT:
        facts.append(Fact("Project", f"{event.project} ({event.region or 'unknown region'})"))
    facts.append(Fact("Transition", f"{transition} ({ago})" if ago else transition))
    if streak := streak_text(event):
        facts.append(Fact("Streak", streak))
    if event.detail:
        facts.append(Fact("Detail", event.detail))
    if job.duration_ms is not None:
        facts.append(Fact("Duration", format_duration(job.duration_ms / 1000)))
    if job.owner:
        facts.append(Fact("Owner", from_job(job.owner)))
    facts.append(Fact("Job id", job.id))
    if job.app_id:
        facts.append(Fact("App id", job.app_id))
    logs = tuple(from_job(redact_text(line)) for line in job.log_tail[-context.log_lines :])
    state = event.to_state.value.upper() if event.to_state is not None else "GONE"
    if event.kind.is_rule:
        state = event.kind.value.upper()
    return Message(
        title=f"DLI job {_name(event)} {state} on {place(event)}",
        severity=severity_of((event,)),
        facts=tuple(facts),
        log_lines=logs if context.log_lines > 0 else (),
        summary=(),
        lines=(),
        more=0,
        link=context.link_for((event,)),
        footer=f"event {event.event_id}",
    )


def _digest(notification: Notification, context: MessageContext) -> Message:
    events = notification.events
    failures = sum(1 for e in events if e.is_failure)
    counts = Counter((place(e), transition_text(e)) for e in events)
    summary = tuple(
        f"{queue}: {transition}: {count}"
        for (queue, transition), count in sorted(counts.items(), key=lambda i: (-i[1], i[0]))
    )
    shown = events[: max(context.digest_jobs, 0)]
    lines = []
    for event in shown:
        ago = _ago(event, context)
        line = f"{_name(event)} ({event.job.id}) on {place(event)}: {transition_text(event)}"
        lines.append(f"{line}, {ago}" if ago else line)
    title = f"DLI: {len(events)} job events"
    if failures:
        title += f", {failures} failed"
    return Message(
        title=title,
        severity=severity_of(events),
        facts=(),
        log_lines=(),
        summary=summary,
        lines=tuple(lines),
        more=len(events) - len(shown),
        link=context.link_for(events),
        footer=f"digest {notification.notification_id} · {len(events)} events",
    )


def body_text(message: Message, markup: Markup) -> str:
    """The message below its title as markdown lines: facts, summary, jobs, logs, link."""
    esc = markup.escape
    out = [message.body] if message.body else []
    out.extend(f"{markup.bold(esc(f.label))}: {esc(f.value)}" for f in message.facts)
    out.extend(esc(line) for line in message.summary)
    if message.lines:
        out.append("")
        out.extend(f"- {markup.escape(line)}" for line in message.lines)
    if message.more:
        out.append(f"+{message.more} more")
    if message.log_lines:
        out.append(markup.bold("Last log lines"))
        out.append(markup.code(message.log_lines))
    if message.link:
        out.append(markup.link("Open in DLI console", message.link))
    return "\n".join(out)
