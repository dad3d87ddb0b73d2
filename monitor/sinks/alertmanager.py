"""The Prometheus Alertmanager sink: one active alert per job problem, via `POST /api/v2/alerts`.

Which alerts an event fires or resolves is decided by `render`
(`monitor.sinks.alertmanager_alerts`). A firing alert is posted with `endsAt` = now +
`resolve_timeout`, so the sink keeps a table of firing alerts and re-posts them (`refresh`)
before then, or Alertmanager would resolve them by itself. The table is rebuilt from the events
this sink was delivered (`restore`) when the daemon starts and when a replica starts leading,
so a restart or a takeover neither drops nor resolves what its predecessor fired. A digest
notification is one POST holding every alert.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from monitor import __version__
from monitor.models import Clock, Event, Notification, utc_now
from monitor.redact import redact_url
from monitor.sinks.alertmanager_alerts import (
    FAILED,
    OVERDUE,
    STUCK,
    Alert,
    AlertKey,
    AlertRules,
    ConsoleUrl,
    alertname_for,
    render,
)
from monitor.sinks.base import ProjectIds, SinkError, safe_text
from monitor.sinks.http import post

__all__ = [
    "FAILED",
    "OVERDUE",
    "STUCK",
    "Alert",
    "AlertRules",
    "AlertmanagerSink",
    "alertname_for",
    "render",
]

USER_AGENT = f"dli-batch-monitor/{__version__}"
API_PATH = "/api/v2/alerts"
REFRESH_BATCH = 100
"""Alerts per POST when re-posting the active set."""


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

    @property
    def memory_horizon(self) -> timedelta | None:
        """How far back `restore` needs events: alerts older than this are not re-posted."""
        return self._max_age

    async def restore(self, delivered: Sequence[Event]) -> int:
        """Rebuild the firing table from the events this sink was delivered, oldest first, as
        if they were sent again (nothing is posted); returns how many alerts fire.

        Called when the daemon starts and when a replica starts leading, so what was fired
        before a restart or by the previous leader goes on being re-posted by `refresh`
        instead of expiring in Alertmanager as if the job had recovered."""
        async with self._lock:
            replay = Notification(self._name, tuple(delivered))
            plan = render(replay, {}, now=self._clock(), rules=self._rules)
            self._active = {alert.key: alert for alert in plan.firing}
            return len(self._active)

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
