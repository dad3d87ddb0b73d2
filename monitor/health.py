"""Liveness and readiness: whether the DLI projects' last successful cycles are recent enough.

`Health` is fed one `record_cycle` per cycle of each project and answers the probes. Each
project keeps its own record (last success, last cycle, failures in a row). The monitor is
healthy while at least one project's last fully successful cycle is younger than
`stale_after_s` (and healthy-while-starting for at most that long after construction): one
project's bad credentials or a region outage shows in that project's own record and series,
and a pod restart would not fix it, so it must not fail the liveness probe. When every project
is stale, the monitor is unhealthy. It is ready once every declared project has finished a
first cycle and at least one of them polled everything (a project that cannot poll at all does
not hold readiness back forever); it stays ready. A state file that cannot be written fails
liveness at once. Time comes from an injected clock. Deliberately not here: the HTTP endpoints
(`monitor.server`), metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from monitor.models import DEFAULT_PROJECT, LOCAL_REGION, Clock, utc_now


@dataclass(slots=True)
class _Project:
    """What the probes know of one project."""

    region: str
    last_success: datetime | None = None
    last_cycle: datetime | None = None
    last_cycle_ok: bool | None = None
    consecutive_failures: int = 0


class Health:
    """What the probes report: readiness and freshness of each project's last good cycle."""

    def __init__(self, *, stale_after_s: float, clock: Clock = utc_now) -> None:
        if stale_after_s <= 0:
            raise ValueError("stale_after_s must be positive")
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._started = clock()
        self._projects: dict[str, _Project] = {}
        self._write_failure: str | None = None
        self._ready = False
        self._idle = False

    def idle(self) -> None:
        """Note that there is nothing to poll (a shard that owns no target): ready and healthy."""
        self._idle = self._ready = True

    def declare(self, project: str, region: str = LOCAL_REGION) -> None:
        """Name a project the monitor polls, so readiness waits for its first cycle."""
        self._projects.setdefault(project, _Project(region))

    def record_write(self, *, error: str | None) -> None:
        """Note whether the last write to the state file worked (`error` None) or why not."""
        self._write_failure = error

    def record_cycle(
        self, *, ok: bool, at: datetime, project: str = DEFAULT_PROJECT, region: str = ""
    ) -> None:
        """Note a finished cycle of a project; `ok` means every target polled successfully."""
        record = self._projects.setdefault(project, _Project(region or LOCAL_REGION))
        record.last_cycle = at
        record.last_cycle_ok = ok
        if ok:
            record.consecutive_failures = 0
            if record.last_success is None or at > record.last_success:
                record.last_success = at
        else:
            record.consecutive_failures += 1
        if not self._ready:
            records = self._projects.values()
            self._ready = all(r.last_cycle is not None for r in records) and any(
                r.last_success is not None for r in records
            )

    @property
    def ready(self) -> bool:
        """True once every project finished a cycle and one polled fully; it stays True."""
        return self._ready

    @property
    def _last_success(self) -> datetime | None:
        """The newest fully successful cycle of any project."""
        moments = [r.last_success for r in self._projects.values() if r.last_success is not None]
        return max(moments) if moments else None

    def healthy(self) -> tuple[bool, str]:
        """Whether the monitor is alive and polling, with a short human-readable reason.

        A state file that cannot be written makes it unhealthy at once: nothing it sees can be
        committed, so nothing can be reported, however fresh the polls."""
        if self._write_failure is not None:
            return False, f"cannot write the state file: {self._write_failure}"
        if self._idle and not self._projects:
            return True, "idle: no target to poll"
        now = self._clock()
        last_success = self._last_success
        if last_success is None:
            waited = (now - self._started).total_seconds()
            if waited < self._stale_after_s:
                return True, "starting"
            return False, f"no successful cycle in {waited:.0f}s since start"
        age = (now - last_success).total_seconds()
        if age >= self._stale_after_s:
            return False, f"last successful cycle {age:.0f}s ago (limit {self._stale_after_s:.0f}s)"
        stale = sorted(name for name, r in self._projects.items() if not self._fresh(r, now))
        if stale:
            return True, f"ok; not polling: {', '.join(stale)}"
        return True, "ok"

    def _fresh(self, record: _Project, now: datetime) -> bool:
        """Whether a project's last full success is recent (or it is still starting)."""
        if record.last_success is None:
            return (now - self._started).total_seconds() < self._stale_after_s
        return (now - record.last_success).total_seconds() < self._stale_after_s

    def snapshot(self) -> dict[str, object]:
        """A JSON-able status for the probe endpoints and the status view."""
        ok, reason = self.healthy()
        now = self._clock()
        last_success = self._last_success
        age = (now - last_success).total_seconds() if last_success else None
        cycles = [r for r in self._projects.values() if r.last_cycle is not None]
        last = max(cycles, key=lambda r: r.last_cycle or now, default=None)
        return {
            "healthy": ok,
            "ready": self.ready,
            "reason": reason,
            "started_at": self._started.isoformat(),
            "last_success_at": _iso(last_success),
            "last_success_age_s": round(age, 3) if age is not None else None,
            "last_cycle_at": _iso(last.last_cycle) if last else None,
            "last_cycle_ok": all(r.last_cycle_ok for r in cycles) if cycles else None,
            "consecutive_failed_cycles": max(
                (r.consecutive_failures for r in self._projects.values()), default=0
            ),
            "stale_after_s": self._stale_after_s,
            "state_writable": self._write_failure is None,
            "projects": {
                name: self._project_view(record, now)
                for name, record in sorted(self._projects.items())
            },
        }

    def _project_view(self, record: _Project, now: datetime) -> dict[str, object]:
        """One project's part of the snapshot."""
        age = (now - record.last_success).total_seconds() if record.last_success else None
        return {
            "region": record.region,
            "up": record.last_cycle_ok is True,
            "polling": self._fresh(record, now),
            "last_success_at": _iso(record.last_success),
            "last_success_age_s": round(age, 3) if age is not None else None,
            "last_cycle_at": _iso(record.last_cycle),
            "last_cycle_ok": record.last_cycle_ok,
            "consecutive_failed_cycles": record.consecutive_failures,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
