"""The text `dli-monitor explain JOB` prints: one block per run, for a person on call.

`render_text(explanation)` lays out each run as: a heading (id, name, target, last state), the
one-line reason when nothing was sent, the states seen (time, cycle, baseline), each event
with its routing and, per sink, its one-line outcome and every attempt (time, outcome, the
vendor's answer, the next retry, the digest), then the lifecycle rules' verdicts. Times are UTC
to the second. The `--json` shape is `monitor.explain.to_json`'s.
"""

from __future__ import annotations

from monitor.explain import EventStory, Explanation, RunStory, SinkStory
from monitor.explain_rules import utc_text
from monitor.models_explain import Attempt, RoutingRecord

_ARROW = "->"


def render_text(explanation: Explanation) -> str:
    """The whole explanation as text, ending with a newline."""
    by = "id" if explanation.matched_by == "id" else "name"
    lines = [f"explain {explanation.query} (matched by {by}, as of {utc_text(explanation.at)})"]
    for run in explanation.runs:
        lines += ["", *_run(run)]
    return "\n".join(lines) + "\n"


def _run(run: RunStory) -> list[str]:
    name = f" {run.name!r}" if run.name else ""
    lines = [f"job {run.job_id}{name} on target {run.target} (queue {run.queue}): {run.state}"]
    if run.reason:
        lines.append(f"  nothing sent: {run.reason}")
    lines.append("  states seen:")
    for seen in run.sightings:
        baseline = "  (baseline, silent)" if seen.baseline else ""
        cycle = f"  cycle {seen.cycle_id}" if seen.cycle_id else ""
        lines.append(f"    {utc_text(seen.seen_at)}  {seen.state.value:<10}{cycle}{baseline}")
    if not run.sightings:
        lines.append("    none recorded")
    lines.append("  events:" if run.events else "  events: none")
    for event in run.events:
        lines += _event(event)
    lines.append("  lifecycle rules:")
    for verdict in run.rules:
        fired = "fired" if verdict.fired else "no"
        lines.append(f"    {verdict.rule:<10} {fired:<6} {verdict.why}")
    return lines


def _event(event: EventStory) -> list[str]:
    change = f"{event.from_state or '(new)'} {_ARROW} {event.to_state or '(gone)'}"
    cycle = f", cycle {event.cycle_id}" if event.cycle_id else ""
    lines = [
        f"    {utc_text(event.observed_at)}  {event.kind} {change}"
        f"  (event {event.event_id[:12]}{cycle})"
    ]
    if event.detail:
        lines.append(f"      detail: {event.detail}")
    if event.routing is not None:
        lines.append(f"      routing: {_routing(event.routing)}")
        if event.routing.rule:
            lines.append(f"      rules: {event.routing.rule}")
    if event.reason:
        lines.append(f"      not sent: {event.reason}")
    for sink in event.sinks:
        lines += _sink(sink)
    return lines


def _routing(record: RoutingRecord) -> str:
    """The decision in a few words: routes matched, default sinks, the silence, quiet hours."""
    if record.silence is not None:
        return f"silenced by silence #{record.silence.id} until {utc_text(record.silence.until)}"
    if record.matched:
        words = "matched route " + "; ".join(record.matched)
    else:
        words = "no route matched: default sinks"
    sinks = []
    for planned in record.plan:
        held = planned.quiet_until
        quiet = f" (quiet hours of route #{planned.route} until {utc_text(held)})" if held else ""
        sinks.append(planned.sink + quiet)
    return f"{words} {_ARROW} " + (", ".join(sinks) if sinks else "no sinks")


def _sink(sink: SinkStory) -> list[str]:
    lines = [f"      {sink.sink}: {sink.reason}"]
    lines += [f"        {_attempt(attempt)}" for attempt in sink.attempts]
    return lines


def _attempt(attempt: Attempt) -> str:
    when = utc_text(attempt.at) if attempt.at is not None else "(time not recorded)"
    words = [f"#{attempt.attempt}", when, attempt.outcome]
    if attempt.answer:
        words.append(attempt.answer)
    if attempt.next_attempt_at is not None:
        words.append(f"next {utc_text(attempt.next_attempt_at)}")
    if attempt.digest_id is not None:
        words.append(f"digest #{attempt.digest_id} of {attempt.digest_size}")
    return "  ".join(words)
