"""Shared parts of the fault soak: the misbehaving webhook receiver and the delivery accounting.

`FaultyReceiver` is `scale_support.Receiver` with a mode the harness switches for a while:
down (503), refusing (the connection is closed unanswered, and the listening socket is shut so
new connections are refused), 500, 429 with Retry-After, slow (the event is recorded on
arrival, then the answer is held, sometimes past the daemon's delivery timeout, so the daemon
may send it again), or a long outage (down or refusing for minutes). Two switches serve the
targeted SIGKILLs: `kill_on_post` (the next POST is recorded, then the callback kills the
daemon before any answer) and `hold` (503 without recording, until released). It keeps the
spans of harness time during which it was failing (down, refusing, 500, 429, held).

`account` compares every receipt with the ground truth: besides the raw change->receipt
latency, a latency net of the receiver's failing spans, and the detection/delivery split
(skipped for events whose change->receipt span met a clock jump: their `observed_at` came from
the daemon's shifted clock). `redeliveries` counts, per SIGKILL, the receipts after it of
events already received before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from benchmarks.scale_support import Receiver, Truth, expectations, percentile
from benchmarks.soak_clock import overlap_s, overlaps
from benchmarks.soak_faults import LONG_OUTAGE

FAILING_MODES = frozenset({"sink_down", "sink_refuse", "sink_500", "sink_429"})
"""Receiver modes that refuse deliveries (slow answers still record them)."""


class FaultyReceiver(Receiver):
    """The webhook endpoint, healthy unless `mode` (or a kill switch) says otherwise."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(f"soak-receiver-{seed}")
        self.mode: str | None = None
        self.params: dict[str, Any] = {}
        self.episodes: Counter[str] = Counter()
        self.affected: Counter[str] = Counter()
        self.kill_on_post: Callable[[], None] | None = None
        """Called once, on the next POST, after its events are recorded and before an answer."""
        self.holding = False
        self.failing: list[list[float]] = []
        """[start, end] harness times of failing spans; end is inf while one is open."""
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._port = 0

    @property
    def behaviour(self) -> str | None:
        """The mode as it acts: a long outage acts as down or refusing (its ``like``)."""
        if self.mode == LONG_OUTAGE:
            return str(self.params.get("like", "sink_down"))
        return self.mode

    async def handle(self, request: web.Request) -> web.Response:
        """Answer as the current mode says; a slow answer records the event first."""
        if self.kill_on_post is not None:
            kill, self.kill_on_post = self.kill_on_post, None
            await super().handle(request)  # received: its redelivery is a raw duplicate
            kill()
            return web.json_response({"error": "killed"}, status=503)
        if self.holding:
            self.last_post = time.time()
            return web.json_response({"error": "held"}, status=503)
        mode = self.behaviour
        if mode is None or self.mode is None:
            return await super().handle(request)
        self.last_post = time.time()
        self.affected[self.mode] += 1
        if mode == "sink_slow":
            response = await super().handle(request)
            await asyncio.sleep(self.rng.uniform(0, self.params.get("max_delay", 2.0)))
            return response
        if mode == "sink_refuse" and request.transport is not None:
            request.transport.close()
        if mode == "sink_429":
            headers = {"Retry-After": str(self.params.get("retry_after", 1))}
            return web.json_response({"error": "slow down"}, status=429, headers=headers)
        status = 500 if mode == "sink_500" else 503
        return web.json_response({"error": mode}, status=status)

    async def set_mode(self, mode: str | None, params: dict[str, Any] | None = None) -> None:
        """Switch the mode; refusing shuts the listening socket, leaving it opens it again."""
        if mode is not None:
            self.episodes[mode] += 1
        before = self.behaviour
        self.mode, self.params = mode, dict(params or {})
        after = self.behaviour
        if before == "sink_refuse" and after != "sink_refuse":
            await self._listen()
        if after == "sink_refuse" and before != "sink_refuse" and self._site is not None:
            await self._site.stop()
            self._site = None
        self._track()

    def hold(self, on: bool) -> None:
        """Answer 503 to every delivery without recording it (on), or stop doing so."""
        self.holding = on
        self._track()

    def failing_spans(self) -> list[tuple[float, float]]:
        """The failing spans so far; an open one ends now."""
        now = time.time()
        return [(start, min(end, now)) for start, end in self.failing]

    def _track(self) -> None:
        failing = self.behaviour in FAILING_MODES or self.holding
        open_ = bool(self.failing) and math.isinf(self.failing[-1][1])
        if failing and not open_:
            self.failing.append([time.time(), math.inf])
        elif open_ and not failing:
            self.failing[-1][1] = time.time()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await self._site.start()
        self._port = self._runner.addresses[-1][1]

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Listen on 127.0.0.1 at a free port (the same one after an outage); yields the URL."""
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await self._listen()
            yield f"http://127.0.0.1:{self._port}/hook"
        finally:
            await self._runner.cleanup()


@dataclass
class Accounting:
    """Every receipt compared with the ground truth."""

    expected: int = 0
    """(job, state) pairs that had to be reported: held over at least one whole good cycle."""
    receipts: int = 0
    distinct: int = 0
    """Distinct event ids received."""
    delivered: int = 0
    """Distinct (job, state) pairs reported that really happened after the start."""
    missed: list[tuple[str, str]] = field(default_factory=list)
    raw_duplicates: int = 0
    """Receipts of an event id already received (at-least-once redelivery)."""
    real_duplicates: list[dict[str, Any]] = field(default_factory=list)
    """A second event id for a (job, state) pair already reported."""
    false: list[dict[str, Any]] = field(default_factory=list)
    """Events for a state the job did not enter after the start."""
    latencies: list[float] = field(default_factory=list)
    latencies_net: list[float] = field(default_factory=list)
    """Each latency less the part of [change, receipt] the receiver spent failing."""
    detection: list[float] = field(default_factory=list)
    """Change to the daemon's `observed_at` (the cycle that saw it): the polling share."""
    delivery: list[float] = field(default_factory=list)
    """`observed_at` to receipt: the outbox's share (commit, retries, restarts)."""
    split_skipped: int = 0
    """First receipts left out of the split: a clock jump met their change->receipt span."""

    def summary(self) -> dict[str, Any]:
        """The counts and latency percentiles."""
        return {
            "expected": self.expected,
            "delivered": self.delivered,
            "missed": len(self.missed),
            "receipts": self.receipts,
            "distinct_event_ids": self.distinct,
            "duplicates_raw": self.raw_duplicates,
            "duplicates_real": len(self.real_duplicates),
            "false": len(self.false),
            "latency_p50_s": _round(percentile(self.latencies, 0.5)),
            "latency_p95_s": _round(percentile(self.latencies, 0.95)),
            "latency_p99_s": _round(percentile(self.latencies, 0.99)),
            "latency_net_p50_s": _round(percentile(self.latencies_net, 0.5)),
            "latency_net_p95_s": _round(percentile(self.latencies_net, 0.95)),
            "latency_net_p99_s": _round(percentile(self.latencies_net, 0.99)),
            "detection_p50_s": _round(percentile(self.detection, 0.5)),
            "detection_p95_s": _round(percentile(self.detection, 0.95)),
            "delivery_p50_s": _round(percentile(self.delivery, 0.5)),
            "delivery_p95_s": _round(percentile(self.delivery, 0.95)),
            "split_skipped_clock_jump": self.split_skipped,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def account(
    truth: Truth,
    cycles: Sequence[tuple[float, float]],
    received: Sequence[dict[str, Any]],
    go: float,
    *,
    failing: Sequence[tuple[float, float]] = (),
    jumps: Sequence[tuple[float, float]] = (),
) -> Accounting:
    """Match receipts with the states jobs entered after `go` (semantics of `compare_events`).

    `cycles` are the (start, end) harness times of the good cycles after the baseline (every
    target polled). A state is expected when a good cycle ran entirely while the job was in it;
    briefer ones may be reported. The same event id again is a raw duplicate; a second event
    id for a reported pair a real one; a pair that never happened after `go` is false.
    `failing` are the receiver's failing spans (for the net latency), `jumps` the spans during
    which the daemon's wall clock was shifted (no detection/delivery split across them).
    """
    allowed, required = expectations(truth, cycles, go)
    result = Accounting(expected=len(required), receipts=len(received))
    seen: set[str] = set()
    reported: set[tuple[str, str]] = set()
    for event in sorted(received, key=lambda event: event["t"]):
        if event["event_id"] in seen:
            result.raw_duplicates += 1
            continue
        seen.add(event["event_id"])
        pair = (event["job_id"], event["to_state"])
        if pair not in allowed:
            result.false.append(event)
        elif pair in reported:
            result.real_duplicates.append(event)
        else:
            reported.add(pair)
            changed, latency = allowed[pair], event["t"] - allowed[pair]
            result.latencies.append(latency)
            result.latencies_net.append(latency - overlap_s(failing, changed, event["t"]))
            if overlaps(jumps, changed, event["t"]):
                result.split_skipped += 1
            else:
                _split(result, event, changed)
    result.distinct = len(seen)
    result.delivered = len(reported)
    result.missed = sorted(required - reported)
    return result


def _split(result: Accounting, event: dict[str, Any], changed: float) -> None:
    """Record how a first receipt's latency divides into detection and delivery."""
    observed = event.get("observed_at")
    if not observed:
        return
    seen = datetime.fromisoformat(observed.replace("Z", "+00:00")).timestamp()
    result.detection.append(seen - changed)
    result.delivery.append(event["t"] - seen)


def redeliveries(
    received: Sequence[dict[str, Any]], kills: Sequence[tuple[float, str]]
) -> list[dict[str, Any]]:
    """Per kill (harness time, kind): receipts after it, before the next, of events received
    before it (what it made the daemon send again); and the largest POST (events at one time)."""
    first: dict[str, float] = {}
    posts: Counter[float] = Counter()
    for event in sorted(received, key=lambda event: event["t"]):
        first.setdefault(event["event_id"], event["t"])
        posts[event["t"]] += 1
    ordered = sorted(kills)
    ends = [at for at, _ in ordered[1:]] + [math.inf]
    rows = []
    for (at, kind), end in zip(ordered, ends, strict=True):
        again = [e for e in received if at <= e["t"] < end and first[e["event_id"]] < at]
        rows.append({"at": round(at, 3), "kind": kind, "redelivered": len(again)})
    return rows


def largest_post(received: Sequence[dict[str, Any]]) -> int:
    """The most events one POST carried (receipts sharing an arrival time)."""
    return max(Counter(event["t"] for event in received).values(), default=0)


def print_summary(report: dict[str, Any]) -> None:
    """The human-readable summary of a soak."""
    s, meta = report["summary"], report["meta"]
    print(f"soak: {meta['minutes']} min, seed {meta['seed']}, interval {meta['interval']} s")
    print(
        f"events: expected {s['expected']}, delivered {s['delivered']}, missed {s['missed']}, "
        f"false {s['false']}"
    )
    print(
        f"duplicates: raw {s['duplicates_raw']} (same event_id again), real "
        f"{s['duplicates_real']} (after de-dup by event_id); receipts {s['receipts']}"
    )
    print(
        f"latency change->receipt: p50 {s['latency_p50_s']} s, p95 {s['latency_p95_s']} s, "
        f"p99 {s['latency_p99_s']} s; of which detection p50 {s['detection_p50_s']} s, "
        f"p95 {s['detection_p95_s']} s, delivery p50 {s['delivery_p50_s']} s, "
        f"p95 {s['delivery_p95_s']} s ({s['split_skipped_clock_jump']} not split: clock jump)"
    )
    print(
        f"latency net of the receiver's failing time: p50 {s['latency_net_p50_s']} s, "
        f"p95 {s['latency_net_p95_s']} s, p99 {s['latency_net_p99_s']} s"
    )
    print(
        f"sigkills {s['sigkills']}: raw duplicates after each at most "
        f"{s['duplicates_raw_max_per_sigkill']} (largest POST {s['largest_post_events']} "
        f"events); IAM tokens issued {s['iam_tokens_issued']}, daemon token fetches "
        f"{s['daemon_token_fetches']}, 401 retries {s['daemon_reauth_retries']}"
    )
    print(
        f"daemon: restarts {s['restarts']}, unexpected exits {s['unexpected_exits']}, cycles "
        f"{s['cycles']} ({s['cycles_failed']} with failed targets), drained {s['drained']}, "
        f"exit codes {s['daemon_exit_codes']}"
    )
    for jump in report["details"]["clock_jumps"]:
        print(
            f"clock jump {jump['offset']} s for {jump['seconds']} s: longest time without a "
            f"cycle line, from it to 3 intervals after it (and its step back) ended, "
            f"{jump['longest_cycle_gap_s']} s"
        )
    faults = report["faults"]
    cells = [
        f"{kind} {row['scheduled']}->{row['injected']} {row['unit']}"
        + (f" ({row['requests_affected']} req)" if "requests_affected" in row else "")
        for kind, row in faults.items()
    ]
    print("faults, scheduled -> injected:")
    for at in range(0, len(cells), 4):
        print("  " + ", ".join(cells[at : at + 4]))
    print("not injected: " + ", ".join(meta["not_injected"]))
    print(f"verdict: {'PASS' if report['ok'] else 'FAIL'}")
