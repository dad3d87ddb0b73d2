"""The differ: pure functions that turn two snapshots of one target into events.

`diff(previous, current, ...)` compares the stored snapshot with a complete listing and
returns the events plus the next snapshot (and the rows to write). It does no I/O, no logging
and reads no clock: `now` is passed in. Confirming a job that left the listing needs an API
call, so that happens before, in the cycle: `find_missing` says which jobs to confirm, and
the answers come back in as `confirmed`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from monitor.models import Event, EventKind, Job, JobState, Snapshot, event_id_for


class Baseline(StrEnum):
    """What the first poll of a target reports."""

    SILENT = "silent"
    """Record every existing job, report nothing."""
    NOTIFY = "notify"
    """Record every existing job and report the ones still active as `appeared`."""


GONE: None = None
"""Value in `confirmed` for a job the state call says no longer exists."""


@dataclass(frozen=True, slots=True)
class DiffResult:
    """The events one listing produced and the snapshot that replaces the previous one."""

    events: tuple[Event, ...]
    snapshot: dict[str, Job]
    upserts: tuple[Job, ...]
    removals: tuple[str, ...]


def find_missing(previous: Snapshot | None, current: Snapshot) -> tuple[Job, ...]:
    """Tracked jobs still active when last seen but absent from a complete listing.

    Nothing may be said about them until `GET .../batches/{id}/state` confirms what happened.
    """
    if previous is None:
        return ()
    missing = [
        job
        for job_id, job in previous.items()
        if job_id not in current and not job.state.is_terminal
    ]
    return tuple(sorted(missing, key=_order))


def diff(
    previous: Snapshot | None,
    current: Snapshot,
    *,
    target: str,
    now: datetime,
    confirmed: Mapping[str, JobState | None] | None = None,
    baseline: Baseline = Baseline.SILENT,
    complete: bool = True,
    baseline_before: datetime | None = None,
) -> DiffResult:
    """Compare a listing with the previous snapshot of the same target.

    `complete` says whether `current` holds every job of the target (a full listing) or only
    the jobs some listings showed this cycle (incremental polling): only a complete listing
    lets a terminal job's absence mean it aged out of DLI's history.

    - `previous is None`: first poll, a baseline (silent unless `baseline` says otherwise).
    - A job not seen before is `appeared`, whatever its state (already `dead` is a failure),
      unless it was created at or before `baseline_before`: then it existed when the baseline was
      taken and is recorded silently (incremental baselines list only what is active or new).
    - A job whose state changed is a `transition`; an `unknown` state never replaces a known
      one, so an unparseable value can neither raise nor clear an alarm.
    - A tracked active job missing from the listing is looked up in `confirmed`: a state
      means a transition (or nothing), `GONE` means `vanished`, no answer means unchanged.
    - A terminal job missing from a complete listing has aged out of DLI's history: dropped
      silently; missing from an incomplete one, it is simply kept.
    """
    answers = confirmed or {}
    out = _Outcome()
    for job in sorted(current.values(), key=_order):
        before = previous.get(job.id) if previous is not None else None
        seen, event = _compare(before, job, target=target, now=now)
        if previous is None:
            event = _baseline_event(seen, target=target, now=now, mode=baseline)
        elif before is None and _predates(job, baseline_before):
            event = None
        out.keep(seen, before, event)
    for before in sorted((previous or {}).values(), key=_order):
        if before.id not in current:
            _absent(out, before, answers, complete=complete, target=target, now=now)
    return DiffResult(tuple(out.events), out.snapshot, tuple(out.upserts), tuple(out.removals))


@dataclass
class _Outcome:
    """What a diff has decided so far: the next snapshot, rows to write, events."""

    events: list[Event] = field(default_factory=list)
    snapshot: dict[str, Job] = field(default_factory=dict)
    upserts: list[Job] = field(default_factory=list)
    removals: list[str] = field(default_factory=list)

    def keep(self, seen: Job, before: Job | None, event: Event | None) -> None:
        """Keep `seen` in the snapshot (a row to write when it changed) and its event."""
        self.snapshot[seen.id] = seen
        if before is None or seen != before:
            self.upserts.append(seen)
        if event is not None:
            self.events.append(event)


def _absent(
    out: _Outcome,
    before: Job,
    answers: Mapping[str, JobState | None],
    *,
    complete: bool,
    target: str,
    now: datetime,
) -> None:
    """Decide about a known job the listing did not show (see `diff` for the rules)."""
    if before.state.is_terminal:
        if complete:
            out.removals.append(before.id)
        else:
            out.snapshot[before.id] = before
        return
    if before.id not in answers:
        out.snapshot[before.id] = before
        return
    state = answers[before.id]
    if state is GONE:
        out.removals.append(before.id)
        out.events.append(
            _event(EventKind.VANISHED, target, before, before.state, None, now, before)
        )
        return
    sighting = dataclasses.replace(before, state=state, raw_state=state.value)
    seen, event = _compare(before, sighting, target=target, now=now)
    out.keep(seen, before, event)


def _compare(
    before: Job | None, job: Job, *, target: str, now: datetime
) -> tuple[Job, Event | None]:
    """The job as it should be stored, and the event its sighting means (if any)."""
    if before is None:
        seen = dataclasses.replace(job, state_since=_since(job, now))
        return seen, _event(EventKind.APPEARED, target, seen, None, job.state, now, None)
    if job.state is JobState.UNKNOWN or job.state is before.state:
        kept_state = before.state
        seen = dataclasses.replace(job, state=kept_state, state_since=before.state_since)
        if job.state is JobState.UNKNOWN and before.state is not JobState.UNKNOWN:
            seen = dataclasses.replace(seen, raw_state=before.raw_state)
        return seen, None
    seen = dataclasses.replace(job, state_since=now)
    return seen, _event(EventKind.TRANSITION, target, seen, before.state, job.state, now, before)


def _baseline_event(job: Job, *, target: str, now: datetime, mode: Baseline) -> Event | None:
    """On the first poll only active jobs are reported, and only in `notify` mode."""
    if mode is Baseline.NOTIFY and not job.state.is_terminal:
        return _event(EventKind.APPEARED, target, job, None, job.state, now, None)
    return None


def _event(
    kind: EventKind,
    target: str,
    job: Job,
    from_state: JobState | None,
    to_state: JobState | None,
    now: datetime,
    before: Job | None,
) -> Event:
    anchor = before.state_since if before is not None else job.create_time
    return Event(
        event_id=event_id_for(target, job.id, kind, from_state, to_state, anchor),
        kind=kind,
        target=target,
        job=job,
        from_state=from_state,
        to_state=to_state,
        observed_at=now,
    )


def _predates(job: Job, moment: datetime | None) -> bool:
    """True when the job was created at or before `moment` (False when either is unknown).

    At or before: DLI stamps creation in milliseconds, and a job sharing the baseline's newest
    millisecond that the baseline did not show was, by far the likelier reading, there already.
    """
    return moment is not None and job.create_time is not None and job.create_time <= moment


def _since(job: Job, now: datetime) -> datetime:
    """Best estimate of when a job we see for the first time entered its current state."""
    if job.update_time is not None and job.update_time <= now:
        return job.update_time
    return now


def _order(job: Job) -> tuple[float, str]:
    """Oldest job first, so events come out in the order the jobs were created."""
    created = job.create_time.timestamp() if job.create_time else 0.0
    return (created, job.id)
