"""Silences applied: which silence, if any, mutes an event at a moment.

The `Silence` value itself (its regex, queue glob and period) lives with the domain values in
`monitor.models_silence`, because the store persists it; it is re-exported here for the
callers that think of silences as a delivery matter. Silenced events are still recorded; they
only get no notification (the router decides that).

What does not live here: storing silences (`monitor.store`), the CLI that adds and expires
them (`monitor.cli`), and routing (`monitor.routing`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from monitor.models import Event
from monitor.models_silence import Silence, SilenceError, compile_job_name

__all__ = ["Silence", "SilenceError", "compile_job_name", "silencing"]


def silencing(silences: Iterable[Silence], event: Event, now: datetime) -> Silence | None:
    """The first silence (lowest id) that mutes the event at `now`, or None."""
    for silence in sorted(silences, key=lambda s: s.id):
        if silence.matches(event, now):
            return silence
    return None
