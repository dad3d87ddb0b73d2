"""The fault soak's faults: the seeded schedule of which fault comes when (harness side).

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

The simulator process's side of these faults (arming them on the world, counting what fired)
is `soak_sim_faults`'.
"""

from __future__ import annotations

import random
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
