"""Why each lifecycle rule fired for a job, or why it did not: pure, for `dli-monitor explain`.

`rule_verdicts(trail, history, settings, now)` reads what the store kept of one job (its
sightings and events, `monitor.models_explain.JobTrail`) and its name's rule memory, and says
per rule — stuck, overdue, failure streak, recovered — whether it fired (the event's own
detail) or not, and why not: the longest time seen in `starting`/`recovering` against its
limit, the run time against the overdue limit (or why there is none), the run's outcome. Times
between states come from the sightings, so they are as exact as the poll interval. No I/O, no
clock: `now` is passed in.

What does not live here: evaluating the rules while polling (`monitor.rules`), reading the
store (`monitor.explain`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.config.durations import format_duration
from monitor.config.rules import RulesSettings
from monitor.models import EventKind, JobState, NameHistory
from monitor.models_explain import JobTrail, Sighting
from monitor.rules import overdue_limit


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """One lifecycle rule's answer for one job: fired or not, and why."""

    rule: str
    """`stuck`, `overdue`, `streak` or `recovered`."""
    fired: bool
    why: str


def rule_verdicts(
    trail: JobTrail, history: NameHistory | None, settings: RulesSettings, now: datetime
) -> tuple[RuleVerdict, ...]:
    """Every lifecycle rule's verdict for the job of `trail` (`history`: its name's memory)."""
    return (
        _stuck(trail, settings, now),
        _overdue(trail, history, settings, now),
        _streak(trail),
        _recovered(trail),
    )


def _fired(trail: JobTrail, kind: EventKind) -> RuleVerdict | None:
    """The verdict of a rule that left an event, else None."""
    for record in trail.events:
        event = record.event
        if event.kind is kind:
            when = utc_text(event.observed_at)
            return RuleVerdict(kind.value, True, f"fired at {when}: {event.detail}".rstrip(": "))
    return None


def _stints(trail: JobTrail, now: datetime) -> list[tuple[Sighting, float]]:
    """Each sighting with how long the job stayed in that state (until the next one, or now
    while it still is in it; until the last sighting once it left the snapshot)."""
    seen = trail.sightings
    out: list[tuple[Sighting, float]] = []
    for index, sighting in enumerate(seen):
        if index + 1 < len(seen):
            end = seen[index + 1].seen_at
        elif trail.job is not None and not sighting.state.is_terminal:
            end = now
        else:
            end = sighting.seen_at
        out.append((sighting, max(0.0, (end - sighting.seen_at).total_seconds())))
    return out


def _stuck(trail: JobTrail, settings: RulesSettings, now: datetime) -> RuleVerdict:
    fired = _fired(trail, EventKind.STUCK)
    if fired is not None:
        return fired
    limits = {
        JobState.STARTING: settings.stuck_starting_after,
        JobState.RECOVERING: settings.stuck_recovering_after,
    }
    stints = [(s.state, spent) for s, spent in _stints(trail, now) if s.state in limits]
    if not stints:
        return RuleVerdict("stuck", False, "not seen in starting or recovering")
    state, spent = max(stints, key=lambda stint: stint[1] / (limits[stint[0]] or 1.0))
    limit = limits[state]
    if limit <= 0:
        return RuleVerdict("stuck", False, f"off for {state.value} (stuck_{state.value}_after 0)")
    return RuleVerdict(
        "stuck", False, f"in {state.value} for {_fmt(spent)} at most (limit {_fmt(limit)})"
    )


def _overdue(
    trail: JobTrail, history: NameHistory | None, settings: RulesSettings, now: datetime
) -> RuleVerdict:
    fired = _fired(trail, EventKind.OVERDUE)
    if fired is not None:
        return fired
    running = [spent for s, spent in _stints(trail, now) if s.state is JobState.RUNNING]
    if not running and (trail.job is None or trail.job.state is not JobState.RUNNING):
        return RuleVerdict("overdue", False, "not seen running")
    job = trail.job
    found = overdue_limit(job, history, settings) if job is not None else None
    if found is None:
        runs = len(history.durations_s) if history is not None else 0
        p95 = (
            "overdue_factor is 0"
            if settings.overdue_factor <= 0
            else f"{runs} of {settings.overdue_min_runs} successful runs known for a p95"
        )
        return RuleVerdict("overdue", False, f"no limit: no overdue entry matches, {p95}")
    _, how = found
    ran = sum(running)
    started = job.create_time if job is not None else None
    if started is not None and job is not None and job.state is JobState.RUNNING:
        ran = max(ran, (now - started).total_seconds())
    return RuleVerdict("overdue", False, f"ran {_fmt(ran)} ({how}, as of now)")


def _streak(trail: JobTrail) -> RuleVerdict:
    failures = [r.event for r in trail.events if r.event.is_failure and not r.event.kind.is_rule]
    counted = [event.streak for event in failures if event.streak]
    if not failures:
        return RuleVerdict("streak", False, "the run has not failed")
    if not counted:
        return RuleVerdict("streak", False, "failed; no streak counted (a vanished job)")
    streak = max(counted)
    name = trail.name or "(no name)"
    noun = "failure" if streak == 1 else "failures"
    return RuleVerdict("streak", streak > 1, f"{streak} {noun} of {name} in a row")


def _recovered(trail: JobTrail) -> RuleVerdict:
    fired = _fired(trail, EventKind.RECOVERED)
    if fired is not None:
        return fired
    succeeded = any(r.event.to_state is JobState.SUCCESS for r in trail.events) or (
        trail.job is not None and trail.job.state is JobState.SUCCESS
    )
    if not succeeded:
        return RuleVerdict("recovered", False, "the run has not succeeded")
    if not trail.name:
        return RuleVerdict("recovered", False, "the job has no name to compare runs by")
    return RuleVerdict("recovered", False, f"the run before it of {trail.name} had not failed")


def _fmt(seconds: float) -> str:
    return format_duration(float(max(0, round(seconds))))


def utc_text(moment: datetime) -> str:
    """A time as `explain` shows it: `2026-11-29 10:00:30Z` (UTC, to the second)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
