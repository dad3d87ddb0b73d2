"""The child processes of the scale benchmark: the simulator process and the real daemon.

Each runs on pipes; its JSON output lines are collected as they come. Both are started so that
they die with the harness (Linux `PR_SET_PDEATHSIG`) and are stopped with SIGTERM, then SIGKILL.
A child may get extra environment variables (the soak preloads libfaketime into the daemon);
each cycle line is stamped with the harness's own arrival time, which no faked clock moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from benchmarks.scale_support import REPO, proc_cpu_s


class RunFailed(Exception):
    """A run could not finish: a child exited early, or a wait ran out of time."""


def stop_on_sigterm() -> None:
    """Let SIGTERM cancel the running task, so its children are stopped on the way out."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def bounded_run(
    entry: dict[str, Any], run: Awaitable[dict[str, Any]], budget_s: float
) -> str:
    """Run one benchmark run within `budget_s` into `entry` (its figures, or `error`), add
    its `wall_s`, and return its status word: a failed run is recorded, not raised."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(budget_s):
            entry.update(await run)
    except (RunFailed, TimeoutError) as exc:
        entry["error"] = str(exc) or f"run exceeded {budget_s:.0f} s"
    entry["wall_s"] = round(time.monotonic() - started, 1)
    return "FAILED " + entry["error"] if "error" in entry else "ok"


def _die_with_parent() -> None:
    """In the child before exec (Linux): get SIGTERM when the harness dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class Child:
    """A child process on pipes whose JSON output lines are collected as they come."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self.tail: deque[str] = deque(maxlen=20)
        self.changed = asyncio.Event()
        self.eof = False
        self.pump = asyncio.create_task(self._pump())

    @classmethod
    async def spawn(cls, name: str, *args: str, env: Mapping[str, str] | None = None) -> Any:
        """Start `python args...` in the repository folder, stderr merged into stdout.

        `env` adds variables to the harness's own environment.
        """
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=REPO,
            env={**os.environ, **env} if env else None,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=2**22,
            preexec_fn=_die_with_parent,
        )
        return cls(name, proc)

    async def _pump(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            text = raw.decode(errors="replace").strip()
            try:
                line = json.loads(text)
            except ValueError:
                line = None
            if isinstance(line, dict):
                self.observe(line)
                self.lines.append(line)
            else:
                self.tail.append(text)
            self.changed.set()
        self.eof = True
        self.changed.set()

    def observe(self, line: dict[str, Any]) -> None:
        """Look at one JSON line as it arrives."""

    async def wait_for(self, test: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until `test()` holds; RunFailed when the child ends or time runs out first."""
        try:
            async with asyncio.timeout(timeout):
                while not test():
                    if self.eof:
                        tail = " | ".join(list(self.tail)[-6:])
                        raise RunFailed(f"{self.name} ended before {what}: {tail}")
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise RunFailed(f"{self.name}: no {what} within {timeout:.0f} s") from None

    async def stop(self, grace: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; always reaps the process."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.gather(self.pump, return_exceptions=True)


class Sim(Child):
    """The simulator process (`benchmarks.scale_sim`)."""

    async def command(self, text: str, timeout: float = 30.0) -> None:
        """Send one command line (a word, maybe an argument) and wait for its acknowledgement."""
        word = text.split(" ", 1)[0]

        def acks() -> int:
            return sum(line.get("ack") == word for line in self.lines)

        before = acks()
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{text}\n".encode())
        await self.proc.stdin.drain()
        await self.wait_for(lambda: acks() > before, timeout, f"ack of {word!r}")

    async def finish(self) -> None:
        """Ask it to stop (it writes its files), then make sure it is gone."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(ConnectionError):
                self.proc.stdin.write(b"stop\n")
                self.proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 30)
        await self.stop()


class Daemon(Child):
    """The real daemon; notes each "cycle completed" line with the process CPU at its arrival."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.cycles: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.events: Counter[str] = Counter()
        """How many lines of each `event` text it printed."""
        self.expected_exit = False
        """Set by a harness that is about to stop it on purpose."""
        super().__init__(name, proc)

    def observe(self, line: dict[str, Any]) -> None:
        """Collect cycle lines (with the harness's arrival time, `_t`), warnings, event counts."""
        self.events[str(line.get("event"))] += 1
        if line.get("event") == "cycle completed":
            line["_t"] = time.time()
            line["_cpu"] = proc_cpu_s(self.proc.pid)
            self.cycles.append(line)
        elif line.get("level") in ("warning", "error", "critical"):
            why = line.get("detail") or line.get("error") or ""
            self.warnings.append(f"{line.get('event')} {why}".strip())

    async def wait_cycles(self, count: int, timeout: float) -> None:
        """Wait until `count` cycles have completed."""
        await self.wait_for(lambda: len(self.cycles) >= count, timeout, f"cycle {count}")
