"""Jobs, events and a `commit` shorthand shared by the store's contract tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from monitor.models import Event, EventKind, Job, JobState, event_id_for
from monitor.store import Store

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)

Reopen = Callable[[], Awaitable[Store]]
"""Opens another store over the same state, as a restarted process would (fixture `reopen`)."""


def job(job_id: str, state: JobState = JobState.RUNNING, **changes: object) -> Job:
    return dataclasses.replace(
        Job(id=job_id, state=state, queue="etl", name=f"name-{job_id}", state_since=T0),
        **changes,
    )


def event(job_id: str, to_state: JobState = JobState.DEAD, *, target: str = "etl") -> Event:
    j = job(job_id, to_state)
    kind = EventKind.TRANSITION
    return Event(
        event_id=event_id_for(target, job_id, kind, JobState.RUNNING, to_state, T0),
        kind=kind,
        target=target,
        job=j,
        from_state=JobState.RUNNING,
        to_state=to_state,
        observed_at=T0,
    )


async def commit(
    store: Store,
    events: list[Event],
    *,
    upserts: tuple[Job, ...] = (),
    removals: tuple[str, ...] = (),
    sinks: tuple[str, ...] = ("hook",),
    now: datetime = T0,
    target: str = "etl",
) -> list[Event]:
    return await store.commit_poll(
        target, upserts=upserts, removals=removals, events=events, sinks=sinks, now=now
    )
