"""The fault soak's wall-clock jumps: libfaketime preloaded into the daemon, stepped by a file.

The daemon runs with ``LD_PRELOAD`` of libfaketime, ``FAKETIME_NO_CACHE=1`` (the offset file
is read on every clock call), ``FAKETIME_DONT_FAKE_MONOTONIC=1`` (only CLOCK_REALTIME moves,
like an NTP step: asyncio timers and durations run on) and ``FAKETIME_TIMESTAMP_FILE`` naming a
file that holds an offset, ``+0`` normally. `ClockFile.step` writes ``+90`` or ``-60`` into it
(atomically, by rename) and records each episode in the harness's own, unfaked time, so the
accounting can tell which events' ``observed_at`` came from a shifted clock. A step back (a
backward jump, or the end of a forward one) can stall the daemon's wall-clock scheduler for
the step's length; `wait_settled` lets the targeted kills wait that out.

Known limit of libfaketime 0.9.10 with ``FAKETIME_DONT_FAKE_MONOTONIC=1``: a blocking
``time.sleep()`` in the faked process fails with EINVAL (it sleeps by an absolute monotonic
deadline). The daemon sleeps only through asyncio, which is unaffected.
"""

from __future__ import annotations

import asyncio
import glob
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LIB_PATTERNS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)
"""Where the Debian package `faketime` (and a source install) puts the library."""


def find_libfaketime() -> str | None:
    """The path of libfaketime.so.1, or None when it is not installed."""
    for pattern in LIB_PATTERNS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def tools_required() -> bool:
    """True when the environment says missing tools are an error (``REQUIRE_TOOLS=1``)."""
    return os.environ.get("REQUIRE_TOOLS") == "1"


@dataclass
class Episode:
    """A stretch of harness time during which the daemon's wall clock was shifted."""

    start: float
    offset: str
    end: float | None = None


@dataclass
class ClockFile:
    """The offset file the daemon's libfaketime reads, and the record of the steps written."""

    path: Path
    lib: str | None
    episodes: list[Episode] = field(default_factory=list)
    offset_s: float = 0.0
    """The offset written last, in seconds."""
    _settled: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    _stall_until: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._write("+0")
        self._settled.set()

    def env(self) -> dict[str, str]:
        """The daemon's extra environment: empty without libfaketime."""
        if self.lib is None:
            return {}
        return {
            "LD_PRELOAD": self.lib,
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
        }

    def is_back(self, offset: str) -> bool:
        """True when stepping to `offset` sets the clock back (ending a forward jump does)."""
        return float(offset) < self.offset_s

    def step(self, offset: str) -> None:
        """Set the offset (``+90``, ``-60``; ``+0`` ends the episode) from now on.

        A step back may stall a scheduler that runs on the wall clock for as long as the step:
        `wait_settled` waits that long; a step forward ends any such wait.
        """
        now, value = time.time(), float(offset)
        if self.episodes and self.episodes[-1].end is None:
            self.episodes[-1].end = now
        if value != 0:
            self.episodes.append(Episode(now, offset))
        self._write(offset)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if value < self.offset_s:
            self._settled.clear()
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.offset_s - value + 1, self._settled.set)
            self._stall_until = time.monotonic() + self.offset_s - value + 1
        else:
            self._settled.set()
            self._stall_until = 0.0
        self.offset_s = value

    def stall_left(self) -> float:
        """Seconds until the stall the last step back may cause is over (0 when none)."""
        return max(0.0, self._stall_until - time.monotonic())

    async def wait_settled(self) -> None:
        """Return once no step back is recent enough to stall the daemon's scheduler."""
        await self._settled.wait()

    def close(self) -> None:
        """Back to +0 (the end of the fault phase); no more waiting (`stall_left` still says)."""
        if self.offset_s != 0:
            self.step("+0")
        if self._timer is not None:
            self._timer.cancel()
        self._settled.set()

    def spans(self) -> list[tuple[float, float]]:
        """The episodes as (start, end) harness times; an open one ends now."""
        now = time.time()
        return [(e.start, e.end if e.end is not None else now) for e in self.episodes]

    def report(
        self, longest_gap: Callable[[float, float], float], *, after: float
    ) -> list[dict[str, Any]]:
        """Per episode: its size and length, and `longest_gap` (the longest time without a
        cycle line) from its start to `after` seconds after its end, or after the stall the
        step back that ends a forward jump may cause."""
        rows = []
        for episode in self.episodes:
            end = episode.end if episode.end is not None else time.time()
            gap = longest_gap(episode.start, end + max(0.0, float(episode.offset)) + after)
            rows.append(
                {
                    "offset": episode.offset,
                    "at": round(episode.start, 3),
                    "seconds": round(end - episode.start, 2),
                    "longest_cycle_gap_s": round(gap, 2),
                }
            )
        return rows

    def _write(self, offset: str) -> None:
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(offset + "\n")
        scratch.replace(self.path)


def overlaps(spans: Sequence[tuple[float, float]], start: float, end: float) -> bool:
    """True when [start, end] meets any of the spans."""
    return any(a <= end and start <= b for a, b in spans)


def overlap_s(spans: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end] covered by the spans (which must not overlap each other)."""
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)
