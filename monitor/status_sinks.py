"""The sinks' part of the status page: health, last attempt, outbox depth and send budget.

`SinkActivity` remembers each sink's last delivery attempt since start; the composition root
wraps the dispatcher's observers with it (the dispatcher itself is not asked). `sink_rows`
adds what the store knows: the outbox depth and oldest pending row (`Outbox.outbox_summary`)
and the sends within each send window (`SendLog.recent_sends`), replayed into a fresh
`RateBudget` to find the next free slot. One or two reads per sink, none per job.

What does not live here: the rest of the page (`monitor.status_page`), the HTML
(`monitor.status_html`), delivery itself (`monitor.dispatch`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from monitor.models import Clock
from monitor.models_explain import DEFERRED, DELIVERED, EventRecord
from monitor.ratelimit import RateBudget, Window, padded
from monitor.store.contract_delivery import Outbox, SendLog


class SinkStore(Outbox, SendLog, Protocol):
    """What the sink rows read (every `Store` is one)."""


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """A configured sink as the page names it: its name, type and send windows."""

    name: str
    type: str
    windows: tuple[Window, ...] = ()


@dataclass(slots=True)
class SinkSeen:
    """A sink's last delivery attempt: its outcome (`delivered`, `retry`, `failed`) and time."""

    outcome: str
    at: datetime
    failure: str = ""
    """The kind of the last failed attempt (`monitor.models.SINK_FAILURE_KINDS`)."""


class SinkActivity:
    """Each sink's last attempt since start, fed by wrapping the dispatcher's observers."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._seen: dict[str, SinkSeen] = {}

    def observer(self, then: Callable[[str, str], None]) -> Callable[[str, str], None]:
        """`then` (a delivery observer: sink, outcome), also remembering the outcome."""

        def observe(sink: str, outcome: str) -> None:
            seen = self._seen.get(sink)
            failure = seen.failure if seen is not None and outcome != "delivered" else ""
            self._seen[sink] = SinkSeen(outcome, self._clock(), failure)
            then(sink, outcome)

        return observe

    def failures(self, then: Callable[[str, str], None]) -> Callable[[str, str], None]:
        """`then` (a failure observer: sink, kind), also remembering the kind."""

        def observe(sink: str, kind: str) -> None:
            seen = self._seen.setdefault(sink, SinkSeen("retry", self._clock()))
            seen.failure = kind
            then(sink, kind)

        return observe

    def last(self, sink: str) -> SinkSeen | None:
        """The sink's last attempt since start (None: none yet)."""
        return self._seen.get(sink)


@dataclass(frozen=True, slots=True)
class SinkRow:
    """One sink: health, last attempt, outbox depth and budget."""

    name: str
    type: str
    health: str
    """`ok` (the last attempt delivered), `failing` (it failed) or `idle` (none seen)."""
    last: SinkSeen | None
    pending: int
    oldest_pending: datetime | None
    budget: tuple[tuple[int, int, float], ...]
    """Per send window: (sends in it now, its limit, its nominal length in seconds); empty:
    no limit."""
    next_slot: datetime | None
    """When the budget next allows a send, if not now."""


async def sink_rows(
    store: SinkStore,
    sinks: Sequence[SinkSpec],
    activity: SinkActivity,
    records: Sequence[EventRecord],
    now: datetime,
) -> tuple[SinkRow, ...]:
    """Every configured sink (and any removed one still owed rows): health, outbox, budget.

    The health comes from this process's last attempt, else from the newest attempt among
    `records` (the recent events), so a restarted daemon still shows what it last knew."""
    outbox = await store.outbox_summary()
    stored = _stored_attempts(records)
    specs = list(sinks)
    specs += [SinkSpec(name, "(removed)") for name in sorted(set(outbox) - {s.name for s in specs})]
    rows = []
    for spec in specs:
        last = activity.last(spec.name) or stored.get(spec.name)
        pending, oldest = outbox.get(spec.name, (0, None))
        used, slot = await _budget(store, spec, now)
        rows.append(SinkRow(spec.name, spec.type, _health(last), last, pending, oldest, used, slot))
    return tuple(rows)


def _stored_attempts(records: Sequence[EventRecord]) -> dict[str, SinkSeen]:
    """Each sink's newest attempt among the recent events (what a restart still knows)."""
    last: dict[str, SinkSeen] = {}
    for record in records:
        for attempt in record.attempts:
            if attempt.at is None or attempt.outcome == DEFERRED:
                continue
            seen = last.get(attempt.sink)
            if seen is None or attempt.at > seen.at:
                failure = "" if attempt.outcome == DELIVERED else attempt.kind
                last[attempt.sink] = SinkSeen(attempt.outcome, attempt.at, failure)
    return last


def _health(last: SinkSeen | None) -> str:
    """A sink's health in a word, from its last attempt."""
    if last is None:
        return "idle"
    return "ok" if last.outcome == DELIVERED else "failing"


async def _budget(
    store: SinkStore, spec: SinkSpec, now: datetime
) -> tuple[tuple[tuple[int, int, float], ...], datetime | None]:
    """Per send window (sends in it, limit, length), and the next free slot if not now."""
    if not spec.windows:
        return (), None
    horizon = max(window.length_s for window in spec.windows)
    sends = await store.recent_sends(spec.name, now - timedelta(seconds=horizon))
    budget = RateBudget(spec.windows, clock=lambda: now)
    for at in sends:
        budget.record(at)
    used = tuple(
        (
            sum(1 for at in sends if at > now - timedelta(seconds=w.length_s)),
            w.limit,
            nominal(w.length_s),
        )
        for w in spec.windows
    )
    slot = budget.next_slot()
    return used, slot if slot > now else None


def nominal(length_s: float) -> float:
    """A window's length as configured: a second or a minute without the margin `padded`
    adds against clock differences (any other length as it is)."""
    return next((base for base in (1.0, 60.0) if padded(base) == length_s), length_s)
