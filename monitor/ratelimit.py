"""Per-sink send budgets: sliding windows that vendors count in, with an injected clock.

A `RateBudget` holds one or more `Window`s (say 1 per 1 s and 18 per 60 s) and the times of
the sends it has been told about. It never allows more than a window's `limit` sends in ANY
stretch of time of that window's length: a send at `t` occupies a slot until `t + length`.
That is stricter than a token bucket, which can let through almost twice its limit within
one window, and it is how DingTalk, WeCom, Feishu and Slack count. A vendor's `Retry-After`
pauses the budget until a given time.

The budget is pure: no I/O, no sleeping, time comes from the injected clock. It answers "how
many sends now" (`allowance`) and "when is the next slot" (`next_slot`); the dispatcher
decides what to do with that and persists send times so a restart can `record` them again.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.models import Clock, utc_now

UNLIMITED = sys.maxsize
"""What `allowance` answers for a budget without windows that is not paused."""

PAD_FRACTION = 0.1
"""`budget_for` lengthens each window by this fraction of it (at most `PAD_MAX_S`) ..."""
PAD_MAX_S = 1.0
"""... so clock differences and network jitter cannot squeeze an extra send into a window."""


@dataclass(frozen=True, slots=True)
class Window:
    """At most `limit` sends in any `length_s` seconds."""

    limit: int
    length_s: float

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("a window's limit must be at least 1")
        if self.length_s <= 0:
            raise ValueError("a window's length must be positive")


class RateBudget:
    """A multi-window sliding budget; `record` each send, ask `allowance` / `next_slot`."""

    def __init__(self, windows: Iterable[Window], *, clock: Clock = utc_now) -> None:
        self._windows = tuple(sorted(windows, key=lambda w: w.length_s))
        self._clock = clock
        self._sends: deque[datetime] = deque()
        """Send times within the longest window, oldest first."""
        self._paused_until: datetime | None = None

    def __repr__(self) -> str:
        spec = ", ".join(f"{w.limit}/{w.length_s:g}s" for w in self._windows) or "unlimited"
        return f"RateBudget({spec})"

    @property
    def windows(self) -> tuple[Window, ...]:
        """The windows, shortest first."""
        return self._windows

    @property
    def horizon_s(self) -> float:
        """How far back send times matter: the longest window (0 without windows)."""
        return self._windows[-1].length_s if self._windows else 0.0

    @property
    def paused_until(self) -> datetime | None:
        """The end of a vendor-imposed pause still in force, else None."""
        if self._paused_until is not None and self._paused_until <= self._clock():
            self._paused_until = None
        return self._paused_until

    def record(self, at: datetime | None = None) -> None:
        """Count one send at `at` (default now); earlier-than-known times are fine too."""
        moment = self._clock() if at is None else at
        if self._sends and moment < self._sends[-1]:
            ordered = sorted([*self._sends, moment])
            self._sends = deque(ordered)
        else:
            self._sends.append(moment)
        self._forget(self._clock())

    def pause(self, until: datetime) -> None:
        """Allow nothing before `until` (a vendor said "retry later"); never shortens a pause."""
        if self._paused_until is None or until > self._paused_until:
            self._paused_until = until

    def allowance(self) -> int:
        """How many sends are allowed right now, before any window would overflow."""
        now = self._clock()
        if self.paused_until is not None:
            return 0
        self._forget(now)
        if not self._windows:
            return UNLIMITED
        return max(0, min(w.limit - self._in_window(w, now) for w in self._windows))

    def next_slot(self) -> datetime:
        """The earliest moment a send is allowed: now when `allowance() > 0`."""
        now = self._clock()
        self._forget(now)
        slot = now
        paused = self.paused_until
        if paused is not None:
            slot = paused
        for window in self._windows:
            slot = max(slot, self._free_at(window, slot))
        return slot

    def _in_window(self, window: Window, now: datetime) -> int:
        """Sends in the `window.length_s` before `now`: those still occupying a slot."""
        start = now - timedelta(seconds=window.length_s)
        return sum(1 for sent in self._sends if sent > start)

    def _free_at(self, window: Window, at: datetime) -> datetime:
        """The earliest time >= `at` with a free slot in `window`."""
        length = timedelta(seconds=window.length_s)
        busy = [sent for sent in self._sends if sent + length > at]
        if len(busy) < window.limit:
            return at
        # The oldest sends must leave the window until only `limit - 1` remain.
        return busy[len(busy) - window.limit] + length

    def _forget(self, now: datetime) -> None:
        """Drop sends older than the longest window: they no longer count anywhere."""
        horizon = now - timedelta(seconds=self.horizon_s)
        while self._sends and self._sends[0] <= horizon:
            self._sends.popleft()


def padded(length_s: float) -> float:
    """A window length with the clock-difference margin added."""
    return length_s + min(length_s * PAD_FRACTION, PAD_MAX_S)


def budget_for(
    per_second: int | None, per_minute: int | None, clock: Clock = utc_now
) -> RateBudget:
    """A budget of `per_second` per (padded) second and `per_minute` per (padded) minute.

    None means "no limit" for that window; with both None the budget only honours pauses.
    """
    windows: list[Window] = []
    if per_second is not None:
        windows.append(Window(per_second, padded(1.0)))
    if per_minute is not None:
        windows.append(Window(per_minute, padded(60.0)))
    return RateBudget(windows, clock=clock)
