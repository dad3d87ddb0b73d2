"""Liveness and readiness: whether the last successful cycle is recent enough.

`Health` is fed one `record_cycle` per cycle and answers the probes: ready after the first
fully successful cycle, healthy while the last success is younger than `stale_after_s`, and
healthy-while-starting for at most `stale_after_s` after construction. Time comes from an
injected clock. Deliberately not here: the HTTP endpoints (`monitor.server`), metrics.
"""

from __future__ import annotations

from datetime import datetime

from monitor.models import Clock, utc_now


class Health:
    """What the probes report: readiness and freshness of the last successful cycle."""

    def __init__(self, *, stale_after_s: float, clock: Clock = utc_now) -> None:
        if stale_after_s <= 0:
            raise ValueError("stale_after_s must be positive")
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._started = clock()
        self._last_success: datetime | None = None
        self._last_cycle: datetime | None = None
        self._last_cycle_ok: bool | None = None
        self._consecutive_failures = 0
        self._write_failure: str | None = None

    def record_write(self, *, error: str | None) -> None:
        """Note whether the last write to the state file worked (`error` None) or why not."""
        self._write_failure = error

    def record_cycle(self, *, ok: bool, at: datetime) -> None:
        """Note a finished cycle; `ok` means every target polled successfully."""
        self._last_cycle = at
        self._last_cycle_ok = ok
        if ok:
            self._consecutive_failures = 0
            if self._last_success is None or at > self._last_success:
                self._last_success = at
        else:
            self._consecutive_failures += 1

    @property
    def ready(self) -> bool:
        """True after the first complete successful cycle; it stays True."""
        return self._last_success is not None

    def healthy(self) -> tuple[bool, str]:
        """Whether the monitor is alive and polling, with a short human-readable reason.

        A state file that cannot be written makes it unhealthy at once: nothing it sees can be
        committed, so nothing can be reported, however fresh the polls."""
        if self._write_failure is not None:
            return False, f"cannot write the state file: {self._write_failure}"
        now = self._clock()
        if self._last_success is None:
            waited = (now - self._started).total_seconds()
            if waited < self._stale_after_s:
                return True, "starting"
            return False, f"no successful cycle in {waited:.0f}s since start"
        age = (now - self._last_success).total_seconds()
        if age < self._stale_after_s:
            return True, "ok"
        return False, f"last successful cycle {age:.0f}s ago (limit {self._stale_after_s:.0f}s)"

    def snapshot(self) -> dict[str, object]:
        """A JSON-able status for the probe endpoints and the status view."""
        ok, reason = self.healthy()
        now = self._clock()
        age = (now - self._last_success).total_seconds() if self._last_success else None
        return {
            "healthy": ok,
            "ready": self.ready,
            "reason": reason,
            "started_at": self._started.isoformat(),
            "last_success_at": _iso(self._last_success),
            "last_success_age_s": round(age, 3) if age is not None else None,
            "last_cycle_at": _iso(self._last_cycle),
            "last_cycle_ok": self._last_cycle_ok,
            "consecutive_failed_cycles": self._consecutive_failures,
            "stale_after_s": self._stale_after_s,
            "state_writable": self._write_failure is None,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
