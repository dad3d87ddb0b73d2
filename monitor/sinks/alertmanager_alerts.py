"""What Alertmanager is told about DLI jobs: the alerts an event fires or resolves; pure.

A failure event (`dead`/`error`/`killed`, or a job that vanished while active) fires an alert
named `DLIBatchJobFailed` whose label set (`alertname`, `severity`, static labels, `project`,
`region`, `queue`, `job_name`, `job_id`, `project_id`) is its identity in Alertmanager; the
lifecycle rules' `stuck` and `overdue` events fire `DLIBatchJobStuck` and `DLIBatchJobOverdue`
the same way, and a `recovered` event resolves like the success it accompanies. An alert is
resolved (same labels, `endsAt` = now) when:

- a later event of the same job id is not a failure (the job moved on), or
- a job with the same project, queue and job name succeeds (the next run of a failed job
  worked).

`render` turns one notification and the firing alerts into what to post; it does no I/O and
reads no clock. What does not live here: HTTP, the firing table and re-posting
(`monitor.sinks.alertmanager`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from monitor.codec import format_time
from monitor.models import (
    DEFAULT_PROJECT,
    Event,
    EventKind,
    Job,
    JobState,
    Notification,
)
from monitor.redact import redact_text
from monitor.sinks.base import ProjectIds, project_lookup

FAILED = "DLIBatchJobFailed"
"""Alert name for a job that ended badly or vanished while active."""
STUCK = "DLIBatchJobStuck"
"""Alert name for a job in `starting`/`recovering` too long (the `stuck` lifecycle rule)."""
OVERDUE = "DLIBatchJobOverdue"
"""Alert name for a job running longer than its limit (the `overdue` lifecycle rule)."""
IDENTITY_LABELS = frozenset(
    {"alertname", "project", "region", "queue", "job_name", "job_id", "project_id"}
)
"""Labels the sink derives from the event; static labels may not override them."""
LOG_LINES = 5
"""How many of the job's last log lines the description carries."""
LOG_LINE_CHARS = 300

ConsoleUrl = Callable[[Event], str | None]
"""Builds the DLI console link of an event's job, in its project's region (None: no link)."""
AlertKey = tuple[tuple[str, str], ...]
"""An alert's identity: its label set, sorted."""


@dataclass(frozen=True, slots=True)
class AlertRules:
    """What `render` needs besides the events: static labels, project ids, timeouts, links.

    `project_id` is one DLI project id for every event, or one per project name."""

    project_id: ProjectIds
    resolve_timeout: timedelta = timedelta(minutes=5)
    labels: Mapping[str, str] = field(default_factory=dict)
    severity: str = "critical"
    console_url: ConsoleUrl | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as Alertmanager knows it, plus the job fields used to decide what resolves it."""

    alertname: str
    job_id: str
    queue: str
    job_name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    generator_url: str | None = None
    project: str = DEFAULT_PROJECT

    @property
    def key(self) -> AlertKey:
        """The identity Alertmanager de-duplicates on: the sorted label set."""
        return tuple(sorted(self.labels.items()))

    def to_json(self, ends_at: datetime) -> dict[str, Any]:
        """The v2 API object of this alert ending at `ends_at` (past or now: resolved)."""
        body: dict[str, Any] = {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": format_time(self.starts_at),
            "endsAt": format_time(max(ends_at, self.starts_at)),
        }
        if self.generator_url:
            body["generatorURL"] = self.generator_url
        return body


@dataclass(frozen=True, slots=True)
class Plan:
    """What one notification changes: alerts to (re-)fire and alerts to resolve, and the body."""

    firing: tuple[Alert, ...]
    resolved: tuple[Alert, ...]
    body: tuple[dict[str, Any], ...]


def alertname_for(event: Event) -> str | None:
    """The alert an event fires, or None when it fires nothing (it may still resolve some)."""
    if event.kind is EventKind.STUCK:
        return STUCK
    if event.kind is EventKind.OVERDUE:
        return OVERDUE
    return FAILED if event.is_failure else None


def resolves(event: Event, alert: Alert) -> bool:
    """True when `event` ends `alert`: the same job moved on, or a same-named run succeeded."""
    if event.is_failure:
        return False
    job = event.job
    if alert.job_id == job.id:
        return True
    return (
        event.to_state is JobState.SUCCESS
        and alert.alertname == FAILED
        and bool(job.name)
        and alert.job_name == job.name
        and alert.queue == job.queue
        and alert.project == event.project
    )


def _transition(event: Event) -> str:
    before = event.from_state.value if event.from_state else "new"
    if event.kind is EventKind.VANISHED:
        return f"{before} → vanished"
    after = event.to_state.value if event.to_state else "unknown"
    if event.kind in (EventKind.STUCK, EventKind.OVERDUE):
        return f"{event.kind.value} in {after}"
    return f"{before} → {after}"


def _duration(ms: int | None) -> str:
    if ms is None or ms < 0:
        return ""
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _log_tail(job: Job) -> list[str]:
    lines = []
    for line in job.log_tail[-LOG_LINES:]:
        text = redact_text(line).rstrip()
        if len(text) > LOG_LINE_CHARS:
            text = text[: LOG_LINE_CHARS - 1] + "…"
        lines.append(text)
    return lines


def _annotations(event: Event, link: str | None) -> dict[str, str]:
    job = event.job
    who = job.name or job.id
    what = {
        EventKind.VANISHED: "vanished",
        EventKind.STUCK: "is stuck",
        EventKind.OVERDUE: "is overdue",
    }.get(event.kind, "failed")
    summary = f"DLI job {who} {what} on queue {job.queue}{_of_project(event)}: {_transition(event)}"
    details = [
        f"Job: {job.name or '(unnamed)'} ({job.id})",
        f"Queue: {job.queue}",
    ]
    if event.project != DEFAULT_PROJECT:
        details.append(f"Project: {event.project} ({event.region or 'unknown region'})")
    details += [
        f"Transition: {_transition(event)}",
        f"Observed at: {format_time(event.observed_at)}",
    ]
    if event.detail:
        details.append(f"Detail: {event.detail}")
    if event.is_failure and event.streak >= 2:
        details.append(f"Streak: failure {event.streak} in a row of {who}")
    if job.owner:
        details.append(f"Owner: {job.owner}")
    if job.app_id:
        details.append(f"App id: {job.app_id}")
    if duration := _duration(job.duration_ms):
        details.append(f"Duration: {duration}")
    if tail := _log_tail(job):
        details.append("Last log lines:")
        details.extend(f"  {line}" for line in tail)
    if link:
        details.append(f"Console: {link}")
    annotations = {
        "summary": summary,
        "description": "\n".join(details),
        "transition": _transition(event),
        "event_id": event.event_id,
    }
    if job.owner:
        annotations["owner"] = job.owner
    if link:
        annotations["console_url"] = link
    return annotations


def _of_project(event: Event) -> str:
    """` (project prod)` for an event of a listed project; nothing for the single form."""
    return "" if event.project == DEFAULT_PROJECT else f" (project {event.project})"


def build_alert(event: Event, alertname: str, rules: AlertRules) -> Alert:
    """The alert `event` fires; empty label values are left out (Alertmanager ignores them)."""
    job = event.job
    labels = {"alertname": alertname, "severity": rules.severity, **rules.labels}
    labels.update(
        project=event.project,
        region=event.region,
        queue=job.queue,
        job_name=job.name,
        job_id=job.id,
        project_id=project_lookup(rules.project_id)(event.project),
    )
    link = rules.console_url(event) if rules.console_url else None
    starts = event.observed_at
    if job.update_time is not None and job.update_time < starts:
        starts = job.update_time
    return Alert(
        alertname=alertname,
        job_id=job.id,
        queue=job.queue,
        job_name=job.name,
        labels={k: v for k, v in labels.items() if v},
        annotations=_annotations(event, link),
        starts_at=starts,
        generator_url=link,
        project=event.project,
    )


def render(
    notification: Notification,
    active: Mapping[AlertKey, Alert],
    *,
    now: datetime,
    rules: AlertRules,
) -> Plan:
    """The alerts one notification fires and resolves, given the active ones; pure.

    Events are applied in order and the last word per label set wins: an alert fired and
    resolved within one digest is posted once, resolved.
    """
    working = dict(active)
    firing: dict[AlertKey, Alert] = {}
    resolved: dict[AlertKey, Alert] = {}
    for event in notification.events:
        alertname = alertname_for(event)
        if alertname is not None:
            alert = build_alert(event, alertname, rules)
            previous = working.get(alert.key)
            if previous is not None:  # a re-sent failure keeps its original start
                alert = replace(alert, starts_at=previous.starts_at)
            working[alert.key] = firing[alert.key] = alert
            resolved.pop(alert.key, None)
            continue
        for key in [k for k, alert in working.items() if resolves(event, alert)]:
            old = working.pop(key)
            firing.pop(key, None)
            note = f"{event.job.name or event.job.id} ({event.job.id}): {_transition(event)}"
            resolved[key] = replace(old, annotations={**old.annotations, "resolved_by": note})
    body = [a.to_json(now + rules.resolve_timeout) for a in firing.values()]
    body += [a.to_json(now) for a in resolved.values()]
    return Plan(tuple(firing.values()), tuple(resolved.values()), tuple(body))
