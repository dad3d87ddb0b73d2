"""The fault soak's disk faults: ``disk_full`` episodes on the tmpfs the state file lives on.

The tmpfs itself (mounting it, or why not; filling and freeing it) is `soak_tmpfs`'s.

A ``disk_full`` episode (`DiskLane.episode`) writes a filler file until ENOSPC, keeps the
filesystem full, deletes the filler and watches the daemon recover. The daemon's SQLite WAL is
reused from its start after each checkpoint and never truncated, so a daemon whose WAL once
reached the autocheckpoint size (1000 pages, ~4 MB) commits into space it already owns; a
commit fails only when the WAL must grow: after a checkpoint that could not grow the database
file, or in a WAL still growing (a fresh one after a clean restart). So the filler stays until
the daemon logs "cannot write the state file" (at error level), at most `NOTICE_TIMEOUT_S`,
then for the fault's seeded hold (5-20 s). Meanwhile:

- the lane holds the supervisor's lock: no signal meets a full disk, and a daemon that exits
  on its own is counted (`unexpected_exits`) and restarted only once space is back;
- `Supervisor.idle` is clear: the clock lane makes no step back, which could stall the
  daemon's wall-clock scheduler so that it never tried to commit;
- /healthz of the daemon (its HTTP server on 127.0.0.1, port 0: the port comes from its
  "http server listening" line) is polled once a second, and /metrics read once the daemon
  said it failed (``dli_monitor_state_write_failures_total``).

Each `Episode` records what the daemon showed: the failure line, the metric, /healthz 503
with the state-file reason, then the "state file writable again" line and /healthz 200 after
space returned, and whether the daemon exited unexpectedly meanwhile (which fails the soak).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from benchmarks import scale_procs as procs
from benchmarks.soak_clock import ClockFile
from benchmarks.soak_faults import Fault
from benchmarks.soak_kills import READY_TIMEOUT_S, Supervisor
from benchmarks.soak_tmpfs import DiskSpace, fill, free

NOTICE_TIMEOUT_S = 60.0
"""Most time the disk stays full waiting for the daemon's first failed commit."""
RECOVER_TIMEOUT_S = 30.0
"""Most time, after space returns, to wait for the daemon's recovery line and a 200."""
FAILED = "cannot write the state file"
RECOVERED = "state file writable again"
LISTENING = "http server listening"
METRIC = re.compile(r"^dli_monitor_state_write_failures_total (\S+)$", re.MULTILINE)


@dataclass
class Episode:
    """One disk_full episode: `at` and `end` harness times, the other times in seconds."""

    at: float
    hold_s: float
    filled_bytes: int = 0
    seen_after_s: float | None = None
    """Fill to the daemon's "cannot write the state file" error line; None if none came."""
    full_s: float | None = None
    """How long the filesystem stayed full (None while it still is)."""
    recovered_after_s: float | None = None
    """Space returned to: the daemon's last state-file line says "writable again" and a cycle
    since then committed (``targets_ok`` > 0)."""
    metric: float | None = None
    """``dli_monitor_state_write_failures_total`` read after the failure line."""
    healthz: list[int] = field(default_factory=list)
    """The status of each /healthz poll (0: no answer)."""
    healthz_failed: bool = False
    """A 503 naming the state file while the disk was full."""
    healthz_recovered: bool = False
    """A 200 after space returned."""
    flaps: int = 0
    """"writable again" lines while the disk was still full (some commit found room)."""
    errors: dict[str, int] = field(default_factory=dict)
    """Error lines the daemon printed during the episode, by event text."""
    crashed: int = 0
    """Unexpected daemon exits from the fill to the end of the episode."""
    end: float = 0.0
    redelivered: int = 0
    """Receipts during the episode of events already received: sent again."""

    def row(self) -> dict[str, Any]:
        """The JSON view."""
        codes = Counter(str(code) for code in self.healthz)
        view = {k: v for k, v in asdict(self).items() if k not in ("healthz", "end")}
        return {**view, "healthz_codes": dict(sorted(codes.items()))}


def _port(daemon: procs.Daemon) -> int | None:
    """The port of the daemon's HTTP server, from its "http server listening" line."""
    line = next((line for line in daemon.lines if line.get("event") == LISTENING), None)
    return int(line["port"]) if line and line.get("port") else None


def _state_lines(daemon: procs.Daemon, since: int) -> list[tuple[int, str]]:
    """(index, FAILED or RECOVERED) of the daemon's state-file lines from index `since` on."""
    found = []
    for index, line in enumerate(daemon.lines[since:], start=since):
        event = str(line.get("event"))
        if FAILED in event and line.get("level") == "error":
            found.append((index, FAILED))
        elif RECOVERED in event:
            found.append((index, RECOVERED))
    return found


def _failed(daemon: procs.Daemon, since: int) -> bool:
    """Whether it logged "cannot write the state file" (at error level) from index `since` on."""
    return any(kind == FAILED for _, kind in _state_lines(daemon, since))


def _recovered(daemon: procs.Daemon, since: int, freed: int) -> bool:
    """Whether its last state-file line says "writable again" and a cycle that ended after it
    and after index `freed` (space back) committed something."""
    states = _state_lines(daemon, since)
    if not states or states[-1][1] != RECOVERED:
        return False
    after = max(states[-1][0], freed)
    return any(
        line.get("event") == "cycle completed" and line.get("targets_ok", 0) > 0
        for line in daemon.lines[after:]
    )


async def _wait(daemon: procs.Daemon, test: Callable[[], bool], timeout: float) -> bool:
    """Check `test()` every 0.1 s until it holds; False on timeout or when the daemon ended."""
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline or daemon.eof:
            return False
        await asyncio.sleep(0.1)
    return True


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    """(status, body) of a GET; (0, "") when it could not be made."""
    try:
        async with session.get(url) as response:
            return response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return 0, ""


class DiskLane:
    """Carries out disk_full episodes on the tmpfs the daemon's state file lives in."""

    def __init__(self, space: DiskSpace) -> None:
        self.space = space
        self.episodes: list[Episode] = []

    async def episode(self, fault: Fault, supervisor: Supervisor, clock: ClockFile) -> None:
        """Fill the disk, wait for the daemon to notice, hold, free it, watch it recover."""
        await clock.wait_settled()  # a recent step back may still stall the scheduler
        async with supervisor.lock:
            daemon = supervisor.current
            with contextlib.suppress(procs.RunFailed):
                await daemon.wait_cycles(1, timeout=READY_TIMEOUT_S)
            if daemon.proc.returncode is not None:
                return
            supervisor.idle.clear()
            exits, mark = supervisor.unexpected_exits, len(daemon.lines)
            record = Episode(at=time.time(), hold_s=fault.seconds)
            probe = asyncio.create_task(self._probe(daemon, record))
            try:
                await self._run(record, daemon, mark)
            finally:
                free(self.space.folder)
                supervisor.idle.set()
                probe.cancel()
                await asyncio.gather(probe, return_exceptions=True)
            record.crashed = supervisor.unexpected_exits - exits
            record.end = time.time()
            errors = [line for line in daemon.lines[mark:] if line.get("level") == "error"]
            record.errors = dict(Counter(str(line.get("event"))[:60] for line in errors))
            self.episodes.append(record)

    async def _run(self, record: Episode, daemon: procs.Daemon, mark: int) -> None:
        """Fill, wait for the failure line, hold, free, wait for recovery and a 200."""
        started = time.monotonic()
        record.filled_bytes = fill(self.space.folder)
        if await _wait(daemon, lambda: _failed(daemon, mark), NOTICE_TIMEOUT_S):
            record.seen_after_s = round(time.monotonic() - started, 2)
            record.metric = await self._metric(daemon)
            with contextlib.suppress(TimeoutError):  # unless the daemon ends first
                await asyncio.wait_for(daemon.proc.wait(), record.hold_s)
        freed, freed_at = len(daemon.lines), time.monotonic()
        record.flaps = sum(kind == RECOVERED for _, kind in _state_lines(daemon, mark))
        free(self.space.folder)
        record.full_s = round(freed_at - started, 2)
        if record.seen_after_s is None:
            return
        if await _wait(daemon, lambda: _recovered(daemon, mark, freed), RECOVER_TIMEOUT_S):
            record.recovered_after_s = round(time.monotonic() - freed_at, 2)
        await _wait(daemon, lambda: record.healthz_recovered, RECOVER_TIMEOUT_S)

    async def _probe(self, daemon: procs.Daemon, record: Episode) -> None:
        """Poll /healthz once a second until cancelled."""
        port = _port(daemon)
        if port is None:
            return
        url = f"http://127.0.0.1:{port}/healthz"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session:
            while True:
                status, body = await _get(session, url)
                record.healthz.append(status)
                if status == 503 and FAILED in body and record.full_s is None:
                    record.healthz_failed = True
                if status == 200 and record.full_s is not None:
                    record.healthz_recovered = True
                await asyncio.sleep(1.0)

    async def _metric(self, daemon: procs.Daemon) -> float | None:
        """The daemon's ``dli_monitor_state_write_failures_total`` now, or None."""
        port = _port(daemon)
        if port is None:
            return None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as session:
            status, body = await _get(session, f"http://127.0.0.1:{port}/metrics")
        found = METRIC.search(body) if status == 200 else None
        return float(found.group(1)) if found else None

    def summary(self, received: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Counts over the episodes, for the soak's summary; `received` are the receipts."""
        first: dict[str, float] = {}
        for event in sorted(received, key=lambda event: event["t"]):
            first.setdefault(event["event_id"], event["t"])
        for e in self.episodes:
            e.redelivered = sum(
                e.at <= r["t"] <= e.end and first[r["event_id"]] < r["t"] for r in received
            )
        episodes = self.episodes
        return {
            "disk_full_episodes": len(episodes),
            "disk_full_seen": sum(e.seen_after_s is not None for e in episodes),
            "disk_full_recovered": sum(e.recovered_after_s is not None for e in episodes),
            "disk_full_metric_counted": sum(bool(e.metric) for e in episodes),
            "healthz_failed_during_disk_full": sum(e.healthz_failed for e in episodes),
            "healthz_recovered_after_disk_full": sum(e.healthz_recovered for e in episodes),
            "disk_full_crashes": sum(e.crashed for e in episodes),
            "disk_full_redelivered": sum(e.redelivered for e in episodes),
        }

    def report(self) -> list[dict[str, Any]]:
        """Per episode, its JSON row."""
        return [episode.row() for episode in self.episodes]


def print_disk(report: dict[str, Any]) -> None:
    """The disk lane's lines of the soak's printed summary."""
    s, meta = report["summary"], report["meta"]
    if meta.get("disk_skipped"):
        print(f"disk_full: not injected: {meta['disk_skipped']}")
        return
    n = s["disk_full_episodes"]
    print(
        f"disk_full: episodes {n}, daemon saw it in {s['disk_full_seen']}, recovered in "
        f"{s['disk_full_recovered']}, metric counted it in {s['disk_full_metric_counted']}; "
        f"healthz_failed_during_disk_full: {s['healthz_failed_during_disk_full']}/{n}, 200 "
        f"again after: {s['healthz_recovered_after_disk_full']}/{n}; crashed during one: "
        f"{s['disk_full_crashes']}; receipts sent again during them {s['disk_full_redelivered']}"
    )
    for row in report["details"].get("disk_full", []):
        print(
            f"  full {row['full_s']} s: failure logged after {row['seen_after_s']} s, recovered "
            f"{row['recovered_after_s']} s after space returned, 'writable again' while full "
            f"{row['flaps']}x; /healthz {row['healthz_codes']}; errors logged {row['errors']}"
        )
