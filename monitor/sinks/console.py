"""The console sink: one human-readable line per event on stdout (or any text stream).

A digest prints a summary line, then one line per event, capped at `DIGEST_LINES` with a
"+N more" marker.

Used by `demo`, by dry runs and by people trying the monitor out. It never fails: a closed or
broken stream is ignored, because a console is not worth retrying.
"""

from __future__ import annotations

import sys
from typing import TextIO

from monitor.codec import format_time
from monitor.models import Event, EventKind, Notification
from monitor.redact import redact_text
from monitor.sinks.content import format_duration

LOG_LINES = 3
"""How many of the job's last log lines a failure shows."""
DIGEST_LINES = 20
"""How many events a digest lists before "+N more"."""


class ConsoleSink:
    """Writes `time  queue  name (id…)  from → to  ran 12m3s  owner=x` per event."""

    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self._name = name
        self._stream = stream

    @property
    def name(self) -> str:
        """The configured sink name."""
        return self._name

    def __repr__(self) -> str:
        return f"ConsoleSink(name={self._name!r})"

    def preview(self, notification: Notification) -> str:
        """The text a send would print; no I/O."""
        return render(notification)

    async def send(self, notification: Notification) -> None:
        """Print the notification; never raises."""
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            stream.write(render(notification) + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken console must not hold up the outbox


def render(notification: Notification) -> str:
    """A single event as `render_line`; a digest as a summary plus one line per event."""
    if not notification.is_digest:
        return render_line(notification.events[0])
    events = notification.events
    failures = sum(1 for event in events if event.is_failure)
    queues = len({event.queue for event in events})
    summary = (
        f"digest: {len(events)} events ({failures} failures) on {queues}"
        f" queue{'s' if queues != 1 else ''}"
    )
    lines = [summary]
    lines.extend(f"  {_digest_line(event)}" for event in events[:DIGEST_LINES])
    if len(events) > DIGEST_LINES:
        lines.append(f"  +{len(events) - DIGEST_LINES} more")
    return "\n".join(lines)


def _digest_line(event: Event) -> str:
    """The first line of `render_line`: no log tail inside a digest."""
    return render_line(event).split("\n", 1)[0]


def render_line(event: Event) -> str:
    """The event as one line, plus the last log lines indented below it for failures."""
    job = event.job
    observed = format_time(event.observed_at.replace(microsecond=0))
    label = f"{job.name or '(unnamed)'} ({job.id[:4]}…)"
    parts = [observed, job.queue, label, _states(event)]
    if job.duration_ms:
        parts.append(f"ran {format_duration(job.duration_ms / 1000)}")
    if job.owner:
        parts.append(f"owner={job.owner}")
    if event.is_failure and event.streak >= 2:
        parts.append(f"failure #{event.streak} in a row")
    if event.detail:
        parts.append(event.detail)
    lines = ["  ".join(parts)]
    if event.is_failure:
        lines.extend(f"    {redact_text(line)}" for line in job.log_tail[-LOG_LINES:])
    return "\n".join(lines)


def _states(event: Event) -> str:
    if event.kind is EventKind.APPEARED:
        return f"new → {event.to_state}"
    if event.kind is EventKind.VANISHED:
        return f"{event.from_state} → gone"
    if event.kind in (EventKind.STUCK, EventKind.OVERDUE):
        return f"{event.kind.value} in {event.to_state}"
    if event.kind is EventKind.RECOVERED:
        return f"recovered: {event.from_state} → {event.to_state}"
    return f"{event.from_state} → {event.to_state}"
