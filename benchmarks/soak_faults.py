"""The fault soak's faults: the seeded schedule (harness side) and the simulator's side of it.

`schedule` draws, from a seed, five independent lanes of faults over the soak's seconds:

- DLI (armed in the simulator process through its control channel, ``fault {json}``): bursts
  of 5xx answers, 429 with Retry-After, answers held longer than the daemon's request timeout,
  malformed or truncated JSON bodies (HTTP 200), a new job inserted while a listing pages,
  connections dropped unanswered (``dli_reset``; aiohttp re-sends a GET once by itself, so it
  takes two in a row to fail one attempt of the daemon), and ``revoke_tokens``: while the
  daemon's next listing request is being answered, every IAM token issued so far stops
  working at once, so the rest of that cycle meets 401s (at least `REVOKE_SPACING_S` apart,
  because the daemon forces a new token at most once a minute);
- process: SIGTERM or SIGKILL of the daemon at a random moment, and SIGKILL at three chosen
  points (`benchmarks.soak_kills`): while a listing request is held (``sigkill_listing``), when
  a delivery arrives, before it is answered (``sigkill_delivery``), and after a cycle committed
  events the receiver then refused (``sigkill_commit``); restarted after a short pause;
- sink (in the harness's webhook receiver, for a while): down (503), refusing connections,
  500, 429 with Retry-After, slow answers (some beyond the daemon's delivery timeout), and in
  runs of 4 minutes or more one long outage (``sink_outage_long``, 60-150 s) per started
  10 minutes;
- clock (`benchmarks.soak_clock`, needs libfaketime): ``clock_jump`` steps the daemon's wall
  clock (only CLOCK_REALTIME; monotonic time runs on) forward or backward for a while;
- disk (`benchmarks.soak_disk`, needs root and a tmpfs mount): ``disk_full`` fills the state
  file's filesystem, the first at 20-40 s, then one every 90-150 s while `DISK_ROOM_S` of the
  phase is left (so every run of 80 s or more has one), each held 5-20 s once the daemon
  noticed. Its own lane and random stream, so the other lanes keep their seeded schedules; it
  does not overlap a signal: the episode holds the process lane's lock (`soak_disk`).

Each lane first uses every one of its kinds once, in a seeded order, then draws at random.

`SimFaults` lives in the simulator process: it arms the DLI faults on the world and counts
what really fired (a rule armed while the daemon is down or stalled may never fire: answer
rules expire after `RULE_TTL_INTERVALS` poll intervals); an inserted job is written to the
ground truth and given a normal life by the driver.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DLI_KINDS = (
    "dli_5xx", "dli_429", "dli_slow", "dli_malformed", "dli_insert", "dli_reset", "revoke_tokens",
)  # fmt: skip
KILL_KINDS = ("sigkill_listing", "sigkill_delivery", "sigkill_commit")
PROCESS_KINDS = ("sigterm", "sigkill", *KILL_KINDS)
SINK_KINDS = ("sink_down", "sink_refuse", "sink_500", "sink_429", "sink_slow")
LONG_OUTAGE = "sink_outage_long"
CLOCK_JUMP = "clock_jump"
DISK_FULL = "disk_full"
ALL_KINDS = (*DLI_KINDS, *PROCESS_KINDS, *SINK_KINDS, LONG_OUTAGE, CLOCK_JUMP, DISK_FULL)
LANES = {
    **dict.fromkeys(DLI_KINDS, "dli"),
    **dict.fromkeys(PROCESS_KINDS, "process"),
    **dict.fromkeys((*SINK_KINDS, LONG_OUTAGE), "sink"),
    CLOCK_JUMP: "clock",
    DISK_FULL: "disk",
}
UNITS = {
    **dict.fromkeys(DLI_KINDS, "answers"),
    **dict.fromkeys(PROCESS_KINDS, "signals"),
    **dict.fromkeys((*SINK_KINDS, LONG_OUTAGE), "episodes"),
    CLOCK_JUMP: "jumps",
    DISK_FULL: "episodes",
}
"""What "injected" counts: DLI answers (or inserts) really affected (for ``revoke_tokens``:
requests refused for a revoked token), signals sent to a live daemon (a targeted SIGKILL only
when its moment came), receiver episodes (an outage is injected whether or not a delivery meets
it), clock steps written, disk fills done (whether or not the daemon then failed a commit)."""
NOT_INJECTED: tuple[str, ...] = ()
"""Fault kinds this soak leaves out on purpose (beyond lanes whose tools are missing)."""
REVOKE_SPACING_S = 70.0
"""Least time between two revocations (the daemon's `auth.REAUTH_INTERVAL` is 60 s)."""
LONG_OUTAGE_FROM_S = 240.0
"""Runs shorter than this get no long receiver outage."""
LONG_OUTAGE_EVERY_S = 600.0
"""At most one long outage per this many seconds of soak."""
DISK_ROOM_S = 40.0
"""A disk_full episode starts only with this much of the fault phase left."""
RULE_TTL_INTERVALS = 5
"""An armed DLI answer rule not used up within this many poll intervals is disarmed: a DLI
fault is a moment, not a debt that a stalled or restarting daemon pays off later in one go."""

MALFORMED_BODIES = (
    '{"from": 0, "total": 7, "sessions": [{"id": "',
    "<html><body><h1>502 Bad Gateway</h1></body></html>",
    "[]",
    "null",
    '{"from": 0, "total": 3, "sessions": [{"id": 12, "state": ',
)


@dataclass(frozen=True)
class Fault:
    """One scheduled fault: `at` seconds after the soak began, lasting `seconds` if it lasts."""

    at: float
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def lane(self) -> str:
        """The lane it runs in: dli, process, sink, clock or disk."""
        return LANES[self.kind]


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
    if kind == "dli_reset":
        return {"count": rng.randint(1, 4)}
    if kind == "revoke_tokens":
        return {}
    return {"offset": page_size}


def _sink(rng: random.Random, kind: str) -> tuple[float, dict[str, Any]]:
    if kind in ("sink_down", "sink_refuse"):
        return rng.uniform(4, 12), {}
    if kind == "sink_429":
        return rng.uniform(2, 6), {"retry_after": rng.choice((1, 2, 3))}
    if kind == "sink_slow":
        return rng.uniform(3, 8), {"max_delay": round(rng.uniform(1, 5), 2)}
    return rng.uniform(2, 6), {}


def _long_outages(rng: random.Random, seconds: float) -> list[Fault]:
    """Long receiver outages, starts at least `LONG_OUTAGE_EVERY_S` apart; none in short runs."""
    faults: list[Fault] = []
    earliest = 20.0
    while seconds >= LONG_OUTAGE_FROM_S:
        window_end = min(earliest + LONG_OUTAGE_EVERY_S, seconds - 10)
        length = min(rng.uniform(60, 150), window_end - earliest)
        if length < 60:
            break
        at = rng.uniform(earliest, window_end - length)
        like = rng.choice(("sink_down", "sink_refuse"))
        faults.append(Fault(round(at, 2), LONG_OUTAGE, {"like": like}, round(length, 2)))
        earliest = at + LONG_OUTAGE_EVERY_S
    return faults


def _clock_jumps(rng: random.Random, seconds: float) -> list[Fault]:
    """Steps of the daemon's wall clock, forward and backward in a seeded order, then random.

    A backward step is held longer than its size, so that a scheduler on the wall clock has
    the time to show a stall; the return to +0 at the end of a hold is a step too (back, after
    a forward jump: such a jump must end early enough for that stall to end in the phase).
    """
    faults, directions, at = [], _kinds(rng, ("forward", "backward")), rng.uniform(10, 25)
    while at < seconds - 10:
        hold = rng.uniform(15, 40)  # the step back that ends a forward jump stalls the daemon
        offset = min(rng.randint(30, 120), int(seconds - 10 - at - hold))  # within the phase
        if next(directions) == "backward" or offset < 30:
            offset = -rng.randint(20, 45)
            hold = -offset + rng.uniform(5, 20)
        if at + hold > seconds - 5:
            break
        faults.append(Fault(round(at, 2), CLOCK_JUMP, {"offset": f"{offset:+d}"}, round(hold, 2)))
        at += hold + rng.uniform(15, 40)
    return faults


def _disk_full(rng: random.Random, seconds: float) -> list[Fault]:
    """Disk-full episodes: the first at 20-40 s, then every 90-150 s; each held 5-20 s."""
    faults, at = [], rng.uniform(20, 40)
    while at + DISK_ROOM_S <= seconds:
        faults.append(Fault(round(at, 2), DISK_FULL, {}, round(rng.uniform(5, 20), 2)))
        at += rng.uniform(90, 150)
    return faults


def schedule(
    seed: int,
    seconds: float,
    *,
    request_timeout: float,
    page_size: int,
    clock_jumps: bool = True,
    disk_full: bool = True,
) -> list[Fault]:
    """The faults of a soak of `seconds`, ordered by time; the same seed gives the same list.

    `clock_jumps` False leaves the clock lane empty (no libfaketime), `disk_full` False the
    disk lane (no tmpfs).
    """
    rng = random.Random(f"soak-faults-{seed}")
    faults: list[Fault] = []
    kinds, at, revoked = _kinds(rng, DLI_KINDS), rng.uniform(2, 5), -REVOKE_SPACING_S
    while at < seconds:
        kind = next(kinds)
        while kind == "revoke_tokens" and at - revoked < REVOKE_SPACING_S:
            kind = next(kinds)
        revoked = at if kind == "revoke_tokens" else revoked
        faults.append(Fault(round(at, 2), kind, _dli(rng, kind, request_timeout, page_size)))
        at += rng.uniform(2, 6)
    jumps = _clock_jumps(random.Random(f"soak-clock-{seed}"), seconds) if clock_jumps else []
    kinds, at = _kinds(rng, PROCESS_KINDS), rng.uniform(8, 15)
    while at < seconds:
        faults.append(Fault(round(at, 2), next(kinds), {"pause": round(rng.uniform(0.5, 3), 2)}))
        at += rng.uniform(10, 24)
    long = _long_outages(random.Random(f"soak-outages-{seed}"), seconds)
    faults += long
    kinds, at, kind = _kinds(rng, SINK_KINDS), rng.uniform(3, 8), None
    while at < seconds:
        kind = kind or next(kinds)
        length, params = _sink(rng, kind)
        clash = next((f for f in long if f.at - 3 < at + length and at < f.at + f.seconds), None)
        if clash is not None:  # after the long outage, the same kind
            at = clash.at + clash.seconds + rng.uniform(3, 8)
            continue
        faults.append(Fault(round(at, 2), kind, params, round(length, 2)))
        at, kind = at + length + rng.uniform(3, 8), None
    faults += jumps
    if disk_full:
        faults += _disk_full(random.Random(f"soak-disk-{seed}"), seconds)
    return sorted(faults, key=lambda fault: fault.at)


class SimFaults:
    """The simulator's side: arms DLI faults on the world and counts the ones that fired.

    `project` and `driver` are `benchmarks.scale_sim`'s `Project` and `Driver`; `announce`
    prints a JSON line (the moment a listing is held, for the harness to SIGKILL the daemon).
    """

    def __init__(
        self, project: Any, driver: Any, announce: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        self.project = project
        self.driver = driver
        self.announce = announce or (lambda line: print(json.dumps(line), flush=True))
        self.armed: Counter[str] = Counter()
        self.fired: Counter[str] = Counter()
        self.hold_spec: dict[str, Any] | None = None
        self.holds = 0
        self.revoke_armed = False
        self.expired: Counter[str] = Counter()
        self._armed: list[tuple[float, Any]] = []
        """(when, rule) of the answer rules armed and maybe not used up yet."""
        world = project.world
        self._take_response = world.faults.take_response
        self._take_delay = world.faults.take_delay
        self._token_revoked = world.faults.token_revoked
        self._apply_drift = world.apply_drift
        world.faults.take_response = self.take_response
        world.faults.take_delay = self.take_delay
        world.faults.token_revoked = self.token_revoked
        world.apply_drift = self.apply_drift

    def apply(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Arm one fault (``{"kind": ..., params}``) or ``{"kind": "clear"}``; the ack's extra."""
        faults, kind = self.project.world.faults, spec["kind"]
        self._expire()
        rules = len(faults.rules)
        if kind == "clear":
            faults.clear()
            self.revoke_armed = False
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
        elif kind == "dli_reset":
            faults.reset("any", count=spec["count"])
        elif kind == "revoke_tokens":
            self.revoke_armed = True  # fires in the daemon's next listing: mid-cycle
        else:
            return {"error": f"unknown fault kind {kind!r}"}
        if len(faults.rules) > rules:
            self._armed.append((time.monotonic(), faults.rules[-1]))
        self.armed[kind] += 1
        return {"kind": kind}

    def _expire(self) -> None:
        """Disarm the rules armed `RULE_TTL_INTERVALS` poll intervals ago and not used up."""
        if not self._armed:
            return
        limit = time.monotonic() - RULE_TTL_INTERVALS * self.driver.interval
        stale = {id(rule): rule for at, rule in self._armed if at < limit and rule.remaining > 0}
        if stale:
            faults = self.project.world.faults
            faults.rules = [rule for rule in faults.rules if id(rule) not in stale]
            self.expired.update(rule.kind for rule in stale.values())
        self._armed = [(at, rule) for at, rule in self._armed if at >= limit and rule.remaining]

    def take_response(self, operation: str, offset: int | None, queue: str | None) -> Any:
        """The world's own rule lookup, counted."""
        self._expire()
        rule = self._take_response(operation, offset, queue)
        if rule is not None:
            names = {"fail": "dli_5xx", "rate_limit": "dli_429", "reset": "dli_reset"}
            name = names.get(rule.kind, "dli_malformed")
            self.fired[name] += 1
        return rule

    def take_delay(self, operation: str, offset: int | None, queue: str | None) -> float:
        """The world's own delay lookup, counted."""
        self._expire()
        seconds = self._take_delay(operation, offset, queue)
        if seconds > 0:
            self.fired["dli_slow"] += 1
        if self.revoke_armed and operation == "list_batches":
            self.revoke_armed = False  # this request passed; the cycle's next ones get 401
            self.project.world.faults.revoke_tokens()
        spec = self.hold_spec
        if spec and operation == "list_batches" and (offset or 0) >= spec.get("min_offset", 0):
            self.hold_spec, self.holds = None, self.holds + 1
            self.announce({"held": operation, "offset": offset, "queue": queue, "t": time.time()})
            seconds += float(spec["seconds"])
        return float(seconds)

    def hold(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Hold the next listing at offset >= ``min_offset`` for ``seconds``; ``{}`` disarms."""
        self.hold_spec = dict(spec) if spec.get("seconds") else None
        return {"armed": self.hold_spec is not None, "holds": self.holds}

    def token_revoked(self, epoch: int) -> bool:
        """The world's own revocation check, counted when it refuses a token."""
        revoked = bool(self._token_revoked(epoch))
        if revoked:
            self.fired["revoke_tokens"] += 1
        return revoked

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
