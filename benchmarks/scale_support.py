"""Shared parts of the scale benchmark: scenarios, /proc readings, and the ground-truth analysis.

The simulator process (`benchmarks.scale_sim`) writes the ground truth; the harness
(`benchmarks.scale`) reads it here to get, per measured cycle, the lower bound of API requests
and the cycle's kind, and, per run, which webhook events were expected, missed or extra, and
how late they came. Ground-truth lines (JSONL) are job lines ``{"t", "id", "q", "from", "to",
"c", "tag"}`` (`from` null for a new job, `c` its create_time in ms, `t` wall seconds) and
control lines ``{"t", "control", ...}``. Also the webhook `Receiver`; no processes here.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import math
import os
import statistics
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
ACTIVE_STATES = ("starting", "running", "recovering")
SLACK_S = 0.05
"""Clock slack when deciding that a state was held over a whole cycle."""


@dataclass(frozen=True)
class Scenario:
    """The size of one simulated project and how lively it is (rates are per poll interval)."""

    name: str
    queues: int
    history: int
    active: int
    churn: float
    """Jobs started (and about as many ended) per interval."""
    short_lived: float
    """Jobs per interval that end 0.1-0.45 intervals after they were created."""
    history_days: float
    long_running: int
    """Initial running jobs created 1-3 days ago (the others: 5-60 minutes ago)."""
    full_interval: float = 0.0
    """Full mode polls no more often than this (0: the run's interval)."""
    full_cycles: int = 0
    """Full mode measures at most this many active cycles (0: as many as asked)."""


SCENARIOS = {
    "S": Scenario("S", 5, 2_000, 50, churn=6, short_lived=1, history_days=3, long_running=1),
    "M": Scenario("M", 50, 20_000, 300, churn=20, short_lived=2, history_days=7, long_running=2),
    "L": Scenario(
        "L", 50, 100_000, 500, 25, 2, 14, long_running=3, full_interval=5.0, full_cycles=6
    ),
    "soak": Scenario("soak", 3, 300, 30, churn=3, short_lived=0.5, history_days=2, long_running=1),
}


def queue_names(count: int) -> list[str]:
    """The queue names of a scenario with `count` queues."""
    return [f"q{index:02d}" for index in range(count)]


def pages(count: int, page_size: int) -> int:
    """Requests to list `count` jobs: full pages plus the short page that shows the end."""
    return count // page_size + 1


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process, from /proc/<pid>/stat (None if gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_mb(pid: int) -> float | None:
    """Peak resident set size (VmHWM) of a live process in MiB (None if unavailable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def median(values: Iterable[float]) -> float | None:
    """The median, or None for no values."""
    items = list(values)
    return statistics.median(items) if items else None


def percentile(values: Iterable[float], share: float) -> float | None:
    """The nearest-rank percentile (`share` in 0..1), or None for no values."""
    items = sorted(values)
    if not items:
        return None
    return items[max(0, math.ceil(share * len(items)) - 1)]


@dataclass
class Truth:
    """Every job's states over time, and the harness commands, as the simulator recorded them."""

    changes: list[dict[str, Any]] = field(default_factory=list)
    controls: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Truth:
        """Read a ground-truth JSONL file (a torn last line is ignored)."""
        truth = cls()
        with path.open() as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                (truth.controls if "control" in record else truth.changes).append(record)
        truth.changes.sort(key=lambda record: record["t"])
        return truth

    def control_time(self, name: str) -> float | None:
        """When the first command `name` was carried out."""
        return next((c["t"] for c in self.controls if c["control"] == name), None)

    def intervals(self) -> dict[str, list[tuple[str, float, float]]]:
        """Per job, its states as (state, entered, left) with `left` = inf for the last one."""
        spans: dict[str, list[tuple[str, float, float]]] = {}
        for record in self.changes:
            job = spans.setdefault(record["id"], [])
            if job:
                state, entered, _ = job[-1]
                job[-1] = (state, entered, record["t"])
            job.append((record["to"], record["t"], math.inf))
        return spans


def lower_bounds(truth: Truth, polls: Sequence[float], page_size: int) -> list[int]:
    """The request lower bound of each cycle k >= 1, polls[k] being its poll time (see `scale`)."""
    changes, at = truth.changes, 0
    state: dict[str, str] = {}
    created: dict[str, int] = {}
    active_count = dict.fromkeys(ACTIVE_STATES, 0)
    ended: dict[str, list[int]] = {"dead": [], "success": []}

    def apply(record: dict[str, Any]) -> None:
        """Replay one ground-truth line onto the running counts."""
        old, new = state.get(record["id"]), record["to"]
        for name, delta in ((old, -1), (new, 1)):
            if name in active_count:
                active_count[name] += delta
        if new in ended and old != new:
            bisect.insort(ended[new], record["c"])
        state[record["id"]] = new
        created.setdefault(record["id"], record["c"])

    while at < len(changes) and changes[at]["t"] <= polls[0]:
        apply(changes[at])
        at += 1
    bounds: list[int] = []
    for poll in polls[1:]:
        was_active = {job for job, name in state.items() if name in active_count}
        new_jobs = 0
        while at < len(changes) and changes[at]["t"] <= poll:
            new_jobs += changes[at]["from"] is None
            apply(changes[at])
            at += 1
        left = [created[job] for job in was_active if state[job] not in active_count]
        bound = pages(new_jobs, page_size)
        bound += sum(pages(active_count[name], page_size) for name in ACTIVE_STATES)
        if left:
            oldest = min(left)
            cost = sum(
                pages(len(keys) - bisect.bisect_left(keys, oldest), page_size)
                for keys in ended.values()
            )
            bound += min(len(left), cost)
        bounds.append(min(bound, pages(len(state), page_size)))
    return bounds


def cycle_kinds(truth: Truth, polls: Sequence[float]) -> list[str]:
    """For each cycle k >= 1: "burst", "changing" or "quiet", by what changed since poll k-1."""
    times = [record["t"] for record in truth.changes]
    bursts = [c["t"] for c in truth.controls if c["control"] == "burst"]
    kinds: list[str] = []
    for previous, poll in itertools.pairwise(polls):
        if any(previous < moment <= poll for moment in bursts):
            kinds.append("burst")
        elif bisect.bisect_right(times, poll) > bisect.bisect_right(times, previous):
            kinds.append("changing")
        else:
            kinds.append("quiet")
    return kinds


@dataclass
class Delivery:
    """Events delivered compared with the ground truth."""

    expected: int = 0
    """(job, state) pairs that had to be reported: held over at least one whole cycle."""
    matched: int = 0
    """Distinct reported (job, state) pairs that really happened (expected or transient)."""
    missed: list[tuple[str, str]] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


def expectations(
    truth: Truth, cycles: Sequence[tuple[float, float]], go: float
) -> tuple[dict[tuple[str, str], float], set[tuple[str, str]]]:
    """(every (job, state) entered after `go` with when it was entered, the pairs that must be
    reported: held over a whole cycle of `cycles`)."""
    starts = [start for start, _ in cycles]
    allowed: dict[tuple[str, str], float] = {}
    required: set[tuple[str, str]] = set()
    for job, spans in truth.intervals().items():
        for state, entered, left in spans:
            if entered <= go:
                continue
            allowed.setdefault((job, state), entered)
            at = bisect.bisect_left(starts, entered + SLACK_S)
            if at < len(cycles) and cycles[at][1] + SLACK_S <= left:
                required.add((job, state))
    return allowed, required


def compare_events(
    truth: Truth,
    cycles: Sequence[tuple[float, float]],
    received: Sequence[dict[str, Any]],
    go: float,
) -> Delivery:
    """Match received events on (job id, to_state) with the states jobs entered after `go`.

    `cycles` are the (start, end) wall times of the cycles after the baseline. A state is
    expected when some cycle ran entirely while the job was in it; a state held more briefly
    may be reported or not. A report of a state the job never entered after `go` (baseline
    states included), or a second event id for the same pair, is extra. Latency runs from the
    simulator's change to the receipt of the event.
    """
    allowed, required = expectations(truth, cycles, go)
    result = Delivery(expected=len(required))
    seen: set[str] = set()
    reported: set[tuple[str, str]] = set()
    for event in sorted(received, key=lambda event: event["t"]):
        if event["event_id"] in seen:
            continue  # an at-least-once redelivery of the same event
        seen.add(event["event_id"])
        pair = (event["job_id"], event["to_state"])
        if pair not in allowed or pair in reported:
            result.extra.append(event)
            continue
        reported.add(pair)
        result.matched += 1
        result.latencies.append(event["t"] - allowed[pair])
    result.missed = sorted(required - reported)
    return result


class Receiver:
    """The webhook endpoint: answers 200 and records each event with its arrival wall time."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.last_post = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        """Record one POST: a single event, or every event of a digest."""
        body = await request.json()
        self.last_post = arrived = time.time()
        for item in body.get("events", []) if body.get("kind") == "digest" else [body]:
            names = ("event_id", "kind", "from_state", "to_state", "observed_at")
            keep = {key: item.get(key) for key in names}
            self.events.append({"t": arrived, "job_id": (item.get("job") or {}).get("id"), **keep})
        return web.json_response({"ok": True})

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Listen on 127.0.0.1 at a free port; yields the hook URL."""
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        finally:
            await runner.cleanup()

    async def settle(self, quiet_s: float, limit_s: float) -> None:
        """Wait until no POST came for `quiet_s` seconds (at most `limit_s`)."""
        for _ in range(max(1, round(limit_s / 0.1))):
            if time.time() - self.last_post >= quiet_s:
                return
            await asyncio.sleep(0.1)
