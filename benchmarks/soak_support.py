"""Shared parts of the fault soak: the misbehaving webhook receiver and the delivery accounting.

`FaultyReceiver` is `scale_support.Receiver` with a mode the harness switches for a while:
down (503), refusing (the connection is closed unanswered, and the listening socket is shut so
new connections are refused), 500, 429 with Retry-After, or slow (the event is recorded on
arrival, then the answer is held, sometimes past the daemon's delivery timeout, so the daemon
may send it again). `account` compares every receipt with the ground truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from benchmarks.scale_support import Receiver, Truth, expectations, percentile


class FaultyReceiver(Receiver):
    """The webhook endpoint, healthy unless `mode` says otherwise."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(f"soak-receiver-{seed}")
        self.mode: str | None = None
        self.params: dict[str, Any] = {}
        self.episodes: Counter[str] = Counter()
        self.affected: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._port = 0

    async def handle(self, request: web.Request) -> web.Response:
        """Answer as the current mode says; a slow answer records the event first."""
        mode = self.mode
        if mode is None:
            return await super().handle(request)
        self.last_post = time.time()
        self.affected[mode] += 1
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
        if self.mode == "sink_refuse" and mode != "sink_refuse":
            await self._listen()
        if mode == "sink_refuse" and self._site is not None:
            await self._site.stop()
            self._site = None
        self.mode, self.params = mode, dict(params or {})

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
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def account(
    truth: Truth,
    cycles: Sequence[tuple[float, float]],
    received: Sequence[dict[str, Any]],
    go: float,
) -> Accounting:
    """Match receipts with the states jobs entered after `go` (semantics of `compare_events`).

    `cycles` are the (start, end) wall times of the good cycles after the baseline (every
    target polled). A state is expected when a good cycle ran entirely while the job was in it;
    briefer ones may be reported. The same event id again is a raw duplicate; a second event
    id for a reported pair a real one; a pair that never happened after `go` is false.
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
            result.latencies.append(event["t"] - allowed[pair])
    result.distinct = len(seen)
    result.delivered = len(reported)
    result.missed = sorted(required - reported)
    return result


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
        f"p99 {s['latency_p99_s']} s"
    )
    print(
        f"daemon: restarts {s['restarts']}, unexpected exits {s['unexpected_exits']}, cycles "
        f"{s['cycles']} ({s['cycles_failed']} with failed targets), drained {s['drained']}, "
        f"exit codes {s['daemon_exit_codes']}"
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
