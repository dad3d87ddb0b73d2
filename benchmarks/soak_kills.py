"""The fault soak's process faults: the supervised daemon, its signals, and targeted SIGKILLs.

`Supervisor` keeps one daemon running (``python -m monitor run``, with the clock lane's extra
environment): it sends SIGTERM or SIGKILL on schedule, restarts the daemon after a pause or
after an unexpected exit, and reads the daemons' "cycle completed" lines, timed by the
harness's own clock (`scale_procs.Daemon` stamps each with its arrival). `kill_at` SIGKILLs at
a chosen point instead of a random one, when a trigger says the moment has come:

- `listing_trigger` (``sigkill_listing``): the simulator holds the next listing request (one
  at offset >= a page first, so that a walk is half done; any listing if none comes) and says
  so on its stdout; the daemon dies waiting for that answer;
- `delivery_trigger` (``sigkill_delivery``): the receiver records the next POST and kills the
  daemon before answering; the restarted daemon sends it again (a raw duplicate);
- `commit_trigger` (``sigkill_commit``): the receiver answers 503 without recording until a
  "cycle completed" line shows events committed this cycle and still pending; then the kill:
  committed, not delivered. The restarted daemon must deliver them from its outbox.

No signal goes to a daemon before its first cycle line (a late lane would otherwise hit one
that has not installed its signal handlers yet). A trigger whose moment does not come within
`TRIGGER_TIMEOUT_S` gives up; nothing is killed and nothing counted as injected. `idle` is
clear while a trigger waits: the clock lane makes no step back then (the daemon's scheduler,
stalled on its wall clock, would never meet the moment; `soak.Lanes` also lets a targeted
kill wait out a recent step back). Every signal is kept in `kills` (harness time, kind) for
the per-kill duplicate count. `keep_logs` writes every process's lines (``soak --logs``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from benchmarks import scale_procs as procs
from benchmarks.soak_support import FaultyReceiver

DRAIN_CYCLES = 3
TRIGGER_TIMEOUT_S = 45.0
"""Bursts of DLI faults may fail several cycles in a row; a moment usually comes in seconds."""
HOLD_S = 10.0
READY_TIMEOUT_S = 30.0
"""How long a fresh daemon may take to its first cycle line before it may be signalled."""
"""How long the simulator holds a listing for ``sigkill_listing`` (longer than the kill)."""

Kill = Callable[[], bool]
"""SIGKILL the daemon now; False when it had already exited."""
Trigger = Callable[[procs.Daemon, Kill], Awaitable[bool]]
"""Waits for the moment, calls the kill; True when it killed."""


class Supervisor:
    """Keeps one daemon running: signals it on schedule, restarts it, notices crashes."""

    def __init__(self, config: Path, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.env = dict(env or {})
        self.daemons: list[procs.Daemon] = []
        self.signals: Counter[str] = Counter()
        self.kills: list[tuple[float, str]] = []
        """Every signal sent: (harness time, fault kind)."""
        self.restarts = 0
        self.unexpected_exits = 0
        self.crashes: list[str] = []
        """The last output lines of each daemon that ended unexpectedly."""
        self.escalated = 0
        self.lock = asyncio.Lock()
        self.idle = asyncio.Event()
        """Set while no targeted kill is waiting for its moment."""
        self.idle.set()
        self.closing = False
        self.watchers: set[asyncio.Task[None]] = set()

    @property
    def current(self) -> procs.Daemon:
        """The newest daemon process."""
        return self.daemons[-1]

    async def start(self) -> None:
        """Spawn a daemon and watch for it exiting on its own."""
        daemon = await procs.Daemon.spawn(
            f"daemon#{len(self.daemons)}", "-m", "monitor", "--log-format", "json",
            "run", "--config", str(self.config), env=self.env,
        )  # fmt: skip
        self.daemons.append(daemon)
        watcher = asyncio.create_task(self._watch(daemon))
        self.watchers.add(watcher)
        watcher.add_done_callback(self.watchers.discard)

    async def _watch(self, daemon: procs.Daemon) -> None:
        await daemon.proc.wait()
        if daemon.expected_exit or self.closing:
            return
        self.unexpected_exits += 1
        self.crashes.append(f"exit {daemon.proc.returncode}: " + " | ".join(list(daemon.tail)[-4:]))
        async with self.lock:
            if daemon is self.current and not self.closing:
                await asyncio.sleep(1.0)
                await self.start()
                self.restarts += 1

    def _signal(self, daemon: procs.Daemon, kind: str) -> bool:
        """Send SIGKILL (or SIGTERM for ``sigterm``) to a live daemon and note it."""
        if daemon.proc.returncode is not None:
            return False
        daemon.expected_exit = True
        self.signals[kind] += 1
        self.kills.append((time.time(), kind))
        if kind == "sigterm":
            daemon.proc.terminate()
        else:
            daemon.proc.kill()
        return True

    async def _restart(self, daemon: procs.Daemon, pause: float) -> None:
        """Wait for the signalled daemon to end (SIGKILL after 20 s), then start a new one."""
        try:
            await asyncio.wait_for(daemon.proc.wait(), 20)
        except TimeoutError:
            self.escalated += 1
        await daemon.stop(grace=1)
        await asyncio.sleep(pause)
        await self.start()
        self.restarts += 1

    async def _ready(self) -> procs.Daemon:
        """The current daemon once it has had the time to start (its first cycle line).

        A process fault that is late (the lane waited for a trigger) would otherwise hit a
        daemon that has not yet installed its signal handlers.
        """
        daemon = self.current
        with contextlib.suppress(procs.RunFailed):
            await daemon.wait_cycles(1, timeout=READY_TIMEOUT_S)
        return daemon

    async def hit(self, kind: str, pause: float) -> None:
        """SIGTERM or SIGKILL the daemon, wait for its exit, restart it after `pause` seconds."""
        async with self.lock:
            daemon = await self._ready()
            if self._signal(daemon, kind):
                await self._restart(daemon, pause)

    async def kill_at(self, kind: str, trigger: Trigger, pause: float) -> bool:
        """SIGKILL the daemon when `trigger` finds the moment, restart it; False if none came."""
        async with self.lock:
            daemon = await self._ready()
            if daemon.proc.returncode is not None:
                return False
            self.idle.clear()
            try:
                killed = await trigger(daemon, lambda: self._signal(daemon, kind))
            finally:
                self.idle.set()
            if killed:
                await self._restart(daemon, pause)
            return killed

    async def close(self) -> None:
        """SIGTERM the daemon (SIGKILL after 20 s); no more restarts."""
        self.closing = True
        async with self.lock:
            for daemon in self.daemons:
                daemon.expected_exit = True
                await daemon.stop(grace=20)
        for watcher in list(self.watchers):
            watcher.cancel()

    def cycles(self) -> list[dict[str, Any]]:
        """Every "cycle completed" line of every daemon after the very first (the baseline),
        as harness times: its end is the line's arrival, its start that less its duration."""
        lines = [line for daemon in self.daemons for line in daemon.cycles][1:]
        rows = []
        for line in lines:
            end = float(line["_t"])
            start = end - float(line.get("duration_s", 0.0))
            ok = not line.get("targets_failed")
            rows.append({"start": start, "end": end, "ok": ok, "pending": line.get("pending")})
        return sorted(rows, key=lambda row: row["start"])

    async def settle(self, since: float, timeout: float) -> bool:
        """Wait for `DRAIN_CYCLES` good cycles begun after `since`, the last with no pending."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    good = [row for row in self.cycles() if row["start"] > since and row["ok"]]
                    if len(good) >= DRAIN_CYCLES and good[-1]["pending"] == 0:
                        return True
                    await asyncio.sleep(0.2)
        except TimeoutError:
            return False

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time between two cycle ends (or `start`/`end`) within [start, end]."""
        ends = sorted(row["end"] for row in self.cycles() if start <= row["end"] <= end)
        marks = [start, *ends, end]
        return max(b - a for a, b in itertools.pairwise(marks))


def keep_logs(folder: Path, children: list[procs.Child]) -> None:
    """Write each child's JSON lines (and its last other lines) to `folder`/<name>.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    for child in children:
        with (folder / f"{child.name}.jsonl").open("w") as out:
            for line in child.lines:
                out.write(json.dumps(line, default=str) + "\n")
            for text in child.tail:
                out.write(json.dumps({"raw": text}) + "\n")


def listing_trigger(sim: procs.Sim, page_size: int) -> Trigger:
    """Kill while the simulator holds a listing request (past the first page if one comes)."""

    def held() -> int:
        return sum("held" in line for line in sim.lines)

    async def trigger(daemon: procs.Daemon, kill: Kill) -> bool:
        try:
            for min_offset in (page_size, 0):
                before = held()
                spec = {"seconds": HOLD_S, "min_offset": min_offset}
                await sim.command("hold " + json.dumps(spec))
                try:
                    await sim.wait_for(
                        lambda before=before: held() > before, TRIGGER_TIMEOUT_S / 2, "a hold"
                    )
                except procs.RunFailed:
                    continue
                return kill()
            return False
        finally:
            await sim.command("hold {}")

    return trigger


def delivery_trigger(receiver: FaultyReceiver) -> Trigger:
    """Kill when the next delivery arrives, after recording it, before answering it."""

    async def trigger(daemon: procs.Daemon, kill: Kill) -> bool:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def on_post() -> None:
            if not done.done():
                done.set_result(kill())

        receiver.kill_on_post = on_post
        try:
            return await asyncio.wait_for(done, TRIGGER_TIMEOUT_S)
        except TimeoutError:
            return False
        finally:
            receiver.kill_on_post = None

    return trigger


def commit_trigger(receiver: FaultyReceiver) -> Trigger:
    """Refuse deliveries until a cycle has committed events still pending; then kill."""

    async def trigger(daemon: procs.Daemon, kill: Kill) -> bool:
        seen = len(daemon.cycles)

        def committed() -> bool:
            return any(
                line.get("events", 0) > 0 and line.get("pending", 0) > 0
                for line in daemon.cycles[seen:]
            )

        receiver.hold(True)
        try:
            await daemon.wait_for(committed, TRIGGER_TIMEOUT_S, "a cycle with new events")
            return kill()
        except procs.RunFailed:
            return False
        finally:
            receiver.hold(False)

    return trigger
