"""The fault soak's faults: the seeded schedule (harness side) and the simulator's side of it.

`schedule` draws, from a seed, three independent lanes of faults over the soak's seconds:

- DLI (armed in the simulator process through its control channel, ``fault {json}``): bursts
  of 5xx answers, 429 with Retry-After, answers held longer than the daemon's request timeout,
  malformed or truncated JSON bodies (HTTP 200), and a new job inserted while a listing pages;
- process: SIGTERM or SIGKILL of the daemon, restarted after a short pause;
- sink (in the harness's webhook receiver, for a while): down (503), refusing connections,
  500, 429 with Retry-After, slow answers (some beyond the daemon's delivery timeout).

Each lane first uses every one of its kinds once, in a seeded order, then draws at random.
Disk-full and clock-jump faults are not part of the soak.

`SimFaults` lives in the simulator process: it arms the DLI faults on the world and counts
what really fired (a rule armed while the daemon is down may never fire); an inserted job is
written to the ground truth and given a normal life by the driver.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

DLI_KINDS = ("dli_5xx", "dli_429", "dli_slow", "dli_malformed", "dli_insert")
PROCESS_KINDS = ("sigterm", "sigkill")
SINK_KINDS = ("sink_down", "sink_refuse", "sink_500", "sink_429", "sink_slow")
ALL_KINDS = DLI_KINDS + PROCESS_KINDS + SINK_KINDS
UNITS = {
    **dict.fromkeys(DLI_KINDS, "answers"),
    **dict.fromkeys(PROCESS_KINDS, "signals"),
    **dict.fromkeys(SINK_KINDS, "episodes"),
}
"""What "injected" counts: DLI answers (or inserts) really affected, signals sent to a live
daemon, receiver episodes (an outage is injected whether or not a delivery meets it)."""
NOT_INJECTED = ("disk_full", "clock_jump")
"""Fault kinds this soak leaves out on purpose."""

MALFORMED_BODIES = (
    '{"from": 0, "total": 7, "sessions": [{"id": "',
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
    "[]",
    "null",
    '{"from": 0, "total": 3, "sessions": [{"id": 12, "state": ',
)


@dataclass(frozen=True)
class Fault:
    """One scheduled fault: `at` seconds after the soak began, lasting `seconds` (sink faults)."""

    at: float
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def lane(self) -> str:
        """The lane it runs in: dli, process or sink."""
        return self.kind.split("_")[0] if self.kind.startswith(("dli", "sink")) else "process"


def _kinds(rng: random.Random, kinds: tuple[str, ...]) -> Any:
    """Every kind once in a seeded order, then random kinds for ever."""
    first = list(kinds)
    rng.shuffle(first)
    yield from first
    while True:
        yield rng.choice(kinds)


def _dli(rng: random.Random, kind: str, request_timeout: float, page_size: int) -> dict[str, Any]:
    if kind == "dli_5xx":
        return {"count": rng.randint(2, 10), "status": rng.choice((500, 502, 503, 504))}
    if kind == "dli_429":
        return {"count": rng.randint(1, 4), "retry_after": rng.choice((1, 2))}
    if kind == "dli_slow":
        return {
            "count": rng.randint(1, 3),
            "seconds": round(request_timeout + rng.uniform(0.5, 2), 2),
        }
    if kind == "dli_malformed":
        return {"count": rng.randint(1, 3), "body": rng.choice(MALFORMED_BODIES)}
    return {"offset": page_size}


def _sink(rng: random.Random, kind: str) -> tuple[float, dict[str, Any]]:
    if kind in ("sink_down", "sink_refuse"):
        return rng.uniform(4, 12), {}
    if kind == "sink_429":
        return rng.uniform(2, 6), {"retry_after": rng.choice((1, 2, 3))}
    if kind == "sink_slow":
        return rng.uniform(3, 8), {"max_delay": round(rng.uniform(1, 5), 2)}
    return rng.uniform(2, 6), {}


def schedule(seed: int, seconds: float, *, request_timeout: float, page_size: int) -> list[Fault]:
    """The faults of a soak of `seconds`, ordered by time; the same seed gives the same list."""
    rng = random.Random(f"soak-faults-{seed}")
    faults: list[Fault] = []
    kinds, at = _kinds(rng, DLI_KINDS), rng.uniform(2, 5)
    while at < seconds:
        kind = next(kinds)
        faults.append(Fault(round(at, 2), kind, _dli(rng, kind, request_timeout, page_size)))
        at += rng.uniform(2, 6)
    kinds, at = _kinds(rng, PROCESS_KINDS), rng.uniform(8, 15)
    while at < seconds:
        faults.append(Fault(round(at, 2), next(kinds), {"pause": round(rng.uniform(0.5, 3), 2)}))
        at += rng.uniform(12, 30)
    kinds, at = _kinds(rng, SINK_KINDS), rng.uniform(3, 8)
    while at < seconds:
        kind = next(kinds)
        length, params = _sink(rng, kind)
        faults.append(Fault(round(at, 2), kind, params, round(length, 2)))
        at += length + rng.uniform(3, 8)
    return sorted(faults, key=lambda fault: fault.at)


class SimFaults:
    """The simulator's side: arms DLI faults on the world and counts the ones that fired.

    `project` and `driver` are `benchmarks.scale_sim`'s `Project` and `Driver`.
    """

    def __init__(self, project: Any, driver: Any) -> None:
        self.project = project
        self.driver = driver
        self.armed: Counter[str] = Counter()
        self.fired: Counter[str] = Counter()
        world = project.world
        self._take_response = world.faults.take_response
        self._take_delay = world.faults.take_delay
        self._apply_drift = world.apply_drift
        world.faults.take_response = self.take_response
        world.faults.take_delay = self.take_delay
        world.apply_drift = self.apply_drift

    def apply(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Arm one fault (``{"kind": ..., params}``) or ``{"kind": "clear"}``; the ack's extra."""
        faults, kind = self.project.world.faults, spec["kind"]
        if kind == "clear":
            faults.clear()
        elif kind == "dli_5xx":
            faults.fail("any", status=spec["status"], count=spec["count"])
        elif kind == "dli_429":
            faults.rate_limit("any", retry_after=spec["retry_after"], count=spec["count"])
        elif kind == "dli_slow":
            faults.delay("any", spec["seconds"], count=spec["count"])
        elif kind == "dli_malformed":
            faults.malformed("any", spec["body"], count=spec["count"])
        elif kind == "dli_insert":
            queue = self.project.rng.choice(self.project.queues)
            self.project.made += 1
            job = {
                "queue": queue,
                "name": f"{queue}-inserted-{self.project.made:07d}",
                "owner": "inserter",
                "job_id": self.project.new_id(),
            }
            faults.insert_during_paging(job, after_offset=spec["offset"])
        else:
            return {"error": f"unknown fault kind {kind!r}"}
        self.armed[kind] += 1
        return {"kind": kind}

    def take_response(self, operation: str, offset: int | None, queue: str | None) -> Any:
        """The world's own rule lookup, counted."""
        rule = self._take_response(operation, offset, queue)
        if rule is not None:
            name = {"fail": "dli_5xx", "rate_limit": "dli_429"}.get(rule.kind, "dli_malformed")
            self.fired[name] += 1
        return rule

    def take_delay(self, operation: str, offset: int | None, queue: str | None) -> float:
        """The world's own delay lookup, counted."""
        seconds = self._take_delay(operation, offset, queue)
        if seconds > 0:
            self.fired["dli_slow"] += 1
        return float(seconds)

    def apply_drift(self, offset: int, queue: str | None) -> None:
        """Fire due drift triggers; each inserted job enters the ground truth and the driver."""
        if not self.project.world.faults.drifts:
            return  # the common case: nothing armed, and no copy of 100,000 job ids
        before = set(self.project.world.jobs)
        self._apply_drift(offset, queue)
        for job_id in set(self.project.world.jobs) - before:
            job = self.project.world.get(job_id)
            self.project.record(job_id, job.queue, None, job.state, job.create_ms, "insert")
            self.fired["dli_insert"] += 1
            self.driver.starting.add(job_id)
            self.driver.schedule(self.driver.rng.uniform(0.5, 2.5), job_id, "run")
        self.project.truth.flush()
