"""The Prometheus Alertmanager sink: one active alert per job problem, via `POST /api/v2/alerts`.

A failure event (`dead`/`error`/`killed`, or a job that vanished while active) fires an alert
named `DLIBatchJobFailed` whose label set (`alertname`, `severity`, static labels, `project`,
`region`, `queue`, `job_name`, `job_id`, `project_id`) is its identity in Alertmanager; the
lifecycle rules' `stuck` and `overdue` events fire `DLIBatchJobStuck` and `DLIBatchJobOverdue`
the same way, and a `recovered` event resolves like the success it accompanies. A firing alert
is posted with `endsAt` = now + `resolve_timeout`, so the sink must re-post it (`refresh`)
before then or Alertmanager resolves it by itself. An alert is resolved (same labels, `endsAt`
= now) when:

- a later event of the same job id is not a failure (the job moved on), or
- a job with the same project, queue and job name succeeds (the next run of a failed job
  worked).

Active alerts live in memory only: after a restart they are no longer re-posted and expire in
Alertmanager after `resolve_timeout`. A digest notification is one POST holding every alert.
`render` is pure (no I/O, no clock); `AlertmanagerSink` adds HTTP and the active-alert table.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from monitor import __version__
from monitor.codec import format_time
from monitor.models import (
    DEFAULT_PROJECT,
    Clock,
    Event,
    EventKind,
    Job,
    JobState,
    Notification,
    utc_now,
)
from monitor.redact import redact_text, redact_url
from monitor.sinks.base import ProjectIds, SinkError, project_lookup, safe_text
from monitor.sinks.http import post

USER_AGENT = f"dli-batch-monitor/{__version__}"
API_PATH = "/api/v2/alerts"
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
MAX_BODY_BYTES = 64 * 1024
REFRESH_BATCH = 100
"""Alerts per POST when re-posting the active set."""

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


class AlertmanagerSink:
    """Posts alerts to one Alertmanager, keeps the firing ones, and re-posts them on `refresh`."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        session: aiohttp.ClientSession,
        project_id: ProjectIds,
        resolve_timeout_s: float = 300.0,
        max_alert_age_s: float | None = 86400.0,
        timeout_s: float = 10.0,
        labels: Mapping[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
        bearer_token: str | None = None,
        console_url: ConsoleUrl | None = None,
        clock: Clock = utc_now,
    ) -> None:
        if basic_auth is not None and bearer_token is not None:
            raise ValueError("give basic_auth or bearer_token, not both")
        self._name = name
        self._base = url.rstrip("/")
        self._endpoint = self._base + API_PATH
        self._session = session
        self._rules = AlertRules(
            project_id=project_id,
            resolve_timeout=timedelta(seconds=resolve_timeout_s),
            labels=dict(labels or {}),
            console_url=console_url,
        )
        self._max_age = None if max_alert_age_s is None else timedelta(seconds=max_alert_age_s)
        self._timeout_s = timeout_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        if basic_auth is not None:
            pair = f"{basic_auth[0]}:{basic_auth[1]}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        if bearer_token is not None:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        self._clock = clock
        self._active: dict[AlertKey, Alert] = {}
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        """The configured sink name."""
        return self._name

    @property
    def active(self) -> tuple[Alert, ...]:
        """The alerts this sink currently keeps firing (and re-posts on `refresh`)."""
        return tuple(self._active.values())

    def __repr__(self) -> str:
        return f"AlertmanagerSink(name={self._name!r}, url={redact_url(self._base)!r})"

    def preview(self, notification: Notification) -> list[dict[str, Any]]:
        """The alerts a send would post now, given the active ones; no I/O, nothing changes."""
        plan = render(notification, self._active, now=self._clock(), rules=self._rules)
        return list(plan.body)

    async def send(self, notification: Notification) -> None:
        """Fire/resolve the notification's alerts in one POST; raises `SinkError` on failure."""
        async with self._lock:
            plan = render(notification, self._active, now=self._clock(), rules=self._rules)
            if not plan.body:
                return  # nothing fires or resolves: a success nobody was alerted about
            await self._post(plan.body)
            for alert in plan.resolved:
                self._active.pop(alert.key, None)
            for alert in plan.firing:
                self._active[alert.key] = alert

    async def refresh(self, now: datetime | None = None) -> int:
        """Re-post every firing alert with a new `endsAt`; returns how many were re-posted.

        Alerts older than `max_alert_age_s` are dropped first: they are not re-posted and
        Alertmanager resolves them after `resolve_timeout`.
        """
        async with self._lock:
            now = now or self._clock()
            if self._max_age is not None:
                cutoff = now - self._max_age
                for key in [k for k, a in self._active.items() if a.starts_at < cutoff]:
                    del self._active[key]
            alerts = list(self._active.values())
            ends_at = now + self._rules.resolve_timeout
            for start in range(0, len(alerts), REFRESH_BATCH):
                await self._post(
                    [a.to_json(ends_at) for a in alerts[start : start + REFRESH_BATCH]]
                )
            return len(alerts)

    async def _post(self, alerts: Sequence[dict[str, Any]]) -> None:
        """One POST of `alerts`; 2xx returns, anything else raises `SinkError`."""
        data = json.dumps(list(alerts), ensure_ascii=False).encode()
        failure: SinkError | None = None
        try:
            await post(
                self._session,
                self._endpoint,
                data,
                headers=self._headers,
                timeout_s=self._timeout_s,
                clock=self._clock,
                secrets=tuple(self._headers.values()),
            )
        except SinkError as error:
            failure = error
        if failure is not None:  # raised here so no exception rides along as __context__
            raise SinkError(
                f"alertmanager: {safe_text(failure.reason)}",
                retryable=failure.retryable,
                retry_after=failure.retry_after,
                kind=failure.kind,
            )
