"""User templates for chat messages: Jinja2 (sandboxed) titles and bodies per event kind.

`MessageTemplates` holds one sink's compiled templates in slots: `default` (every single
event), one per event kind (`transition`, `stuck`, …) and `digest`. `apply` renders the slot
that fits a notification over the built-in `Message` (a title replaces the title; a body
replaces facts, summary, job lines and log lines, so `body_text` shows it as written). A
template that fails at send time (an undefined name, a sandbox violation) leaves the built-in
text in place and is logged once per slot, never blocking a delivery.

Values that come from the DLI API (names, owners, log lines) reach templates with `<`/`>`
replaced by look-alikes, so a job name cannot smuggle `<!channel>` or `<at id=all>` into chat
through a template; log lines are redacted.

What does not live here: validating templates at config load (`monitor.config.templates`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import structlog
from jinja2 import StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

from monitor.codec import format_time
from monitor.models import Event, Notification
from monitor.redact import redact_text
from monitor.sinks.base import safe_text
from monitor.sinks.content import (
    Message,
    MessageContext,
    format_duration,
    severity_of,
    streak_text,
    transition_text,
)

log = structlog.get_logger(__name__)

SLOTS = (
    "default",
    "transition",
    "appeared",
    "vanished",
    "stuck",
    "overdue",
    "recovered",
    "digest",
)
"""Where a template can sit: every single event, one event kind, or digests."""
MAX_TITLE_CHARS = 250


def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)


def _inert(text: str) -> str:
    """API text made inert in chat markup: angle brackets become look-alikes."""
    return text.replace("<", "\u2039").replace(">", "\u203a")


class MessageTemplates:
    """One sink's compiled title/body templates, keyed by slot (see `SLOTS`)."""

    def __init__(self, slots: Mapping[str, tuple[str | None, str | None]]) -> None:
        unknown = set(slots) - set(SLOTS)
        if unknown:
            raise ValueError(f"unknown template slot(s): {', '.join(sorted(unknown))}")
        env = _environment()
        self._slots: dict[str, tuple[Template | None, Template | None]] = {
            slot: (
                env.from_string(title) if title is not None else None,
                env.from_string(body) if body is not None else None,
            )
            for slot, (title, body) in slots.items()
        }
        self._failed: set[tuple[str, str, str]] = set()

    def __bool__(self) -> bool:
        return bool(self._slots)

    def _pick(self, notification: Notification) -> tuple[Template | None, Template | None]:
        """The title and body templates for a notification, each from its most specific slot."""
        if notification.is_digest:
            return self._slots.get("digest", (None, None))
        specific = self._slots.get(notification.events[0].kind.value, (None, None))
        default = self._slots.get("default", (None, None))
        return (specific[0] or default[0], specific[1] or default[1])

    def apply(
        self, notification: Notification, message: Message, context: MessageContext
    ) -> Message:
        """`message` with the templated title and/or body; the built-in text where one fails."""
        title_template, body_template = self._pick(notification)
        if title_template is None and body_template is None:
            return message
        variables = template_context(notification, context, message.title)
        title = self._render(title_template, variables, notification, "title")
        body = self._render(body_template, variables, notification, "body")
        if title is not None:
            title = " ".join(title.split())[:MAX_TITLE_CHARS] or message.title
            message = replace(message, title=title)
        if body is not None and body.strip():
            message = replace(
                message, body=body.strip("\n"), facts=(), log_lines=(), summary=(), lines=(), more=0
            )
        return message

    def _render(
        self,
        template: Template | None,
        variables: Mapping[str, Any],
        notification: Notification,
        part: str,
    ) -> str | None:
        if template is None:
            return None
        try:
            return template.render(variables)
        except Exception as exc:  # any template failure falls back to the built-in text
            slot = "digest" if notification.is_digest else notification.events[0].kind.value
            key = (notification.sink, slot, part)
            if key not in self._failed:
                self._failed.add(key)
                log.warning(
                    "message template failed; sending the built-in text",
                    sink=notification.sink,
                    slot=slot,
                    part=part,
                    error=safe_text(f"{type(exc).__name__}: {exc}"),
                )
            return None


def event_variables(event: Event, context: MessageContext) -> dict[str, Any]:
    """What a template sees of one event: `event` and `job` (API text made inert)."""
    job = event.job
    since = job.state_since or job.update_time or event.observed_at
    ago = ""
    if context.now is not None:
        ago = f"{format_duration((context.now - since).total_seconds())} ago"
    logs = [_inert(redact_text(line)) for line in job.log_tail[-context.log_lines :]]
    return {
        "event": {
            "kind": event.kind.value,
            "from_state": event.from_state.value if event.from_state else None,
            "to_state": event.to_state.value if event.to_state else None,
            "transition": transition_text(event),
            "observed_at": format_time(event.observed_at),
            "ago": ago,
            "event_id": event.event_id,
            "is_failure": event.is_failure,
            "streak": event.streak,
            "streak_text": _inert(streak_text(event)),
            "detail": _inert(event.detail),
            "project": event.project,
            "region": event.region,
        },
        "job": {
            "id": _inert(job.id),
            "name": _inert(job.name or "(unnamed)"),
            "queue": _inert(job.queue),
            "owner": _inert(job.owner),
            "app_id": _inert(job.app_id),
            "state": job.state.value,
            "duration": format_duration(job.duration_ms / 1000) if job.duration_ms else "",
            "duration_s": job.duration_ms / 1000 if job.duration_ms is not None else None,
            "log_tail": logs if context.log_lines > 0 else [],
        },
    }


def template_context(
    notification: Notification, context: MessageContext, default_title: str
) -> dict[str, Any]:
    """Every name a template may use: event, job, project, region, console_url, digest,
    severity, default_title (`project`/`region` are the first event's, also `event.project`).

    For a digest, `event`/`job` are the first event's and `digest` has `count`, `failures` and
    `events` (each with its own `event` and `job`); for a single event `digest` is None.
    """
    events = notification.events
    first = event_variables(events[0], context)
    digest = None
    if notification.is_digest:
        digest = {
            "count": len(events),
            "failures": sum(1 for e in events if e.is_failure),
            "events": [event_variables(e, context) for e in events],
        }
    return {
        **first,
        "project": events[0].project,
        "region": events[0].region,
        "console_url": context.link_for(events),
        "digest": digest,
        "severity": severity_of(events).value,
        "default_title": default_title,
    }
