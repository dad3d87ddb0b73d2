"""A request budget for the DLI API: at most N requests in any 60-second window.

A sliding-window log, not a token bucket: a bucket holding N and refilled at N a minute lets
about 2N requests through within one minute, which is exactly what a gateway counting in
sliding windows punishes. Time and sleeping are injected so tests run on a fake clock.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

WINDOW_S = 60.0
"""The length of the window the limit applies to, in seconds."""

MIN_WAIT_S = 0.001
"""Shortest sleep, so float rounding can never make a waiter spin."""


class RequestBudget:
    """Admits at most `max_per_minute` calls in any 60 s window; <= 0 means unlimited."""

    def __init__(
        self,
        max_per_minute: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._limit = max_per_minute
        self._monotonic = monotonic
        self._sleep = sleep
        self._admitted: deque[float] = deque()
        self._lock = asyncio.Lock()

    @property
    def limit(self) -> int:
        """The configured maximum per window (<= 0: unlimited)."""
        return self._limit

    async def acquire(self) -> None:
        """Wait until one more call fits in the window, then count it; callers go in order."""
        if self._limit <= 0:
            return
        async with self._lock:
            while True:
                now = self._monotonic()
                while self._admitted and self._admitted[0] <= now - WINDOW_S:
                    self._admitted.popleft()
                if len(self._admitted) < self._limit:
                    self._admitted.append(now)
                    return
                await self._sleep(max(self._admitted[0] + WINDOW_S - now, MIN_WAIT_S))
