"""`LeaseKeeper`: the loop that acquires a lease, keeps renewing it, and says when it is lost.

The keeper owns one connection of its own (so renewals never queue behind store work in a
pool), renews every TTL/3 and counts its deadline on the monotonic clock from the moment the last
successful renewal was *sent*: the server's `expires_at` is later than that, so the keeper always
gives up leadership before the server would hand the lease to someone else. `is_leader` reads
that deadline on every call, so it turns False on time even while a renewal hangs.

Database errors never escape the loop: they are logged when they start and stop, and they end
leadership only when the deadline passes; the next attempt reconnects. What leadership protects
is enforced in the database by `check_fence`; `is_leader` only tells the process when to stop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Self

import asyncpg
import structlog

from monitor.leader.lease import Fence, current_holder, ensure_schema, release, try_acquire

log = structlog.get_logger(__name__)

Connect = Callable[[], Awaitable[asyncpg.Connection]]
"""Opens a new connection, e.g. `lambda: asyncpg.connect(dsn, timeout=5)`."""
ChangeCallback = Callable[[bool, str], None]
"""Called with (is_leader, reason) on every change of leadership."""
MonotonicClock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class LeaseKeeper:
    """Keeps lease `name` for `holder`: acquire, renew every `interval_s`, report changes."""

    def __init__(
        self,
        connect: Connect,
        name: str,
        holder: str,
        ttl_s: float,
        *,
        interval_s: float | None = None,
        clock: MonotonicClock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        interval = ttl_s / 3 if interval_s is None else interval_s
        if not 0 < interval < ttl_s:
            raise ValueError(f"need 0 < interval_s < ttl_s, got {interval} and {ttl_s}")
        self.name, self.holder, self.ttl_s, self.interval_s = name, holder, ttl_s, interval
        self._connect, self._clock, self._sleep = connect, clock, sleep
        self._conn: asyncpg.Connection | None = None
        self._token: int | None = None
        self._leading = False
        self._deadline = float("-inf")
        self._last_error: str | None = None
        self._answered = False
        self._callbacks: list[ChangeCallback] = []
        self._became_leader = asyncio.Event()
        self._stopped_leading = asyncio.Event()
        self._stopped_leading.set()
        self._task: asyncio.Task[None] | None = None
        self._ctx = {"lease": name, "holder": holder}

    @property
    def is_leader(self) -> bool:
        """True while the lease is ours and our own deadline has not passed."""
        return self._leading and self._clock() < self._deadline

    @property
    def reachable(self) -> bool:
        """True while the last acquire/renew call got an answer from the database."""
        return self._answered

    @property
    def fence(self) -> Fence | None:
        """The fence to check in every leader-only transaction, or None when not leading."""
        if self._token is None or not self.is_leader:
            return None
        return Fence(self.name, self.holder, self._token)

    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call `callback(is_leader, reason)` on every change; returns a function to remove it."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    async def wait_leader(self) -> Fence:
        """Wait until we lead, and return the fence."""
        while True:
            await self._became_leader.wait()
            fence = self.fence
            if fence is not None:
                return fence
            await self._stopped_leading.wait()  # the deadline passed; the loop will notice

    async def wait_not_leader(self) -> None:
        """Wait until the loop has noticed that we no longer lead (or never did)."""
        await self._stopped_leading.wait()

    async def run_once(self) -> bool:
        """One acquire-or-renew attempt (what `run` repeats); returns `is_leader` afterwards."""
        self._expire_if_past_deadline()
        started = self._clock()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the call completes, and then `stop` would wait for the loop forever.
            async with asyncio.timeout(self._call_timeout(started)):
                token, other = await self._attempt()
        except asyncio.CancelledError:
            self._drop_connection()  # cut off midway: the connection's state is unknown
            raise
        except Exception as exc:
            self._failed(exc)
        else:
            self._succeeded(token, other, started)
        self._expire_if_past_deadline()
        return self.is_leader

    async def run(self) -> None:
        """Keep the lease until cancelled (`stop` also releases it)."""
        while True:
            await self.run_once()
            await self._sleep(self._next_delay())

    def start(self) -> None:
        """Run the loop in a background task."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"lease-keeper:{self.name}")

    async def stop(self) -> None:
        """Stop the loop, step down, release the lease so a standby takes over, disconnect."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        if self._leading:
            self._change(False, "released")  # stop acting as leader before anyone can take over
        try:
            async with asyncio.timeout(self.interval_s):
                await self._release()
        except Exception as exc:
            log.warning("lease release failed", **self._ctx, error=type(exc).__name__)
        finally:
            self._drop_connection()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _attempt(self) -> tuple[int | None, str | None]:
        """Acquire or renew; with no token, also who holds the lease (when we are losing it)."""
        conn = await self._connection()
        token = await try_acquire(conn, self.name, self.holder, self.ttl_s)
        other = None
        if token is None and self._leading:
            held = await current_holder(conn, self.name)
            other = held[0] if held else "nobody"
        return token, other

    async def _connection(self) -> asyncpg.Connection:
        """The keeper's own connection, opened (with a statement timeout) when needed."""
        if self._conn is None or self._conn.is_closed():
            self._conn = None
            conn = await self._connect()
            try:
                timeout_ms = str(max(1, int(self.interval_s * 1000)))
                await conn.execute("SELECT set_config('statement_timeout', $1, false)", timeout_ms)
                await ensure_schema(conn)
            except BaseException:
                conn.terminate()
                raise
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        """Forget the connection at once; a call cut off midway leaves it in an unknown state."""
        conn, self._conn = self._conn, None
        self._answered = False
        if conn is not None:
            conn.terminate()

    async def _release(self) -> None:
        """Expire our lease on the server if it is still ours (it may have been taken)."""
        token, self._token = self._token, None
        if token is not None:
            fence = Fence(self.name, self.holder, token)
            if await release(await self._connection(), fence):
                log.info("lease released", **self._ctx, token=token)

    def _call_timeout(self, now: float) -> float:
        """Each call is bounded by the interval, and while leading also by the deadline."""
        if self._leading:
            return max(0.0, min(self.interval_s, self._deadline - now))
        return self.interval_s

    def _next_delay(self) -> float:
        """Sleep the interval, but wake up at the deadline to notice that it passed."""
        if self._leading:
            return max(0.0, min(self.interval_s, self._deadline - self._clock()))
        return self.interval_s

    def _failed(self, exc: Exception) -> None:
        self._drop_connection()
        reason = f"renew failed: {type(exc).__name__}"
        if reason != self._last_error:
            error = type(exc).__name__
            log.warning("lease call failing", **self._ctx, error=error, detail=str(exc))
        self._last_error = reason

    def _succeeded(self, token: int | None, other: str | None, started: float) -> None:
        self._answered = True
        if self._last_error is not None:
            log.info("lease calls recovered", **self._ctx, previous=self._last_error)
            self._last_error = None
        if token is None:
            if self._leading:
                self._change(False, f"lease lost to {other}")
            self._token = None
            return
        if self._leading and token != self._token:
            self._change(False, f"lease lost: token moved from {self._token} to {token}")
        self._token = token
        self._deadline = started + self.ttl_s
        if not self._leading:
            self._change(True, "acquired")

    def _expire_if_past_deadline(self) -> None:
        if self._leading and self._clock() >= self._deadline:
            self._change(False, self._last_error or "deadline passed")

    def _change(self, leading: bool, reason: str) -> None:
        """Record a change of leadership: events, one log line, the callbacks."""
        self._leading = leading
        (self._became_leader if leading else self._stopped_leading).set()
        (self._stopped_leading if leading else self._became_leader).clear()
        if leading:
            log.info("leadership acquired", **self._ctx, token=self._token, reason=reason)
        elif reason == "released":
            log.info("leadership released", **self._ctx, token=self._token, reason=reason)
        else:
            log.warning("leadership lost", **self._ctx, token=self._token, reason=reason)
        for callback in list(self._callbacks):
            try:
                callback(leading, reason)
            except Exception:
                log.exception("leadership callback failed", **self._ctx)
