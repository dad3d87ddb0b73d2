"""What the status pages say: `GET /` (the overview) and `GET /jobs/{job}` (`explain` as HTML).

`StatusPages` is what the server's page routes call: `home()` gathers an `Overview`
(`monitor.status_page`) and renders it (summary, poll health, jobs per queue and state, recent
events with each sink's outcome, jobs running longer than usual, sinks); `job()` renders what
`explain` answers for a job id or name (per run: states seen, events with routing, every
attempt per sink, lifecycle rules), or a 404 page; `asset()` serves the stylesheet and the
icon. Both pages reload themselves at the poll interval (at least every 5 s apart).

What does not live here: the HTML building blocks and escaping (`monitor.status_markup`), the
data (`monitor.status_page`), the headers, auth and routes (`monitor.server`).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from monitor.explain import EventStory, Explanation, RunStory, SinkStory, explain
from monitor.models_explain import Attempt, RoutingRecord
from monitor.status_markup import (
    Where,
    asset,
    badge,
    document,
    job_link,
    row,
    section,
    span,
    table,
    text,
    when,
)
from monitor.status_page import (
    Counts,
    EventRow,
    Overview,
    PollRow,
    StatusSources,
    gather,
    refresh_after,
)
from monitor.status_sinks import SinkRow

NAV = (
    ("#polls", "Polling"),
    ("#jobs", "Jobs"),
    ("#events", "Recent events"),
    ("#long", "Running long"),
    ("#sinks", "Sinks"),
)
STATUS_KIND = {"delivered": "ok", "pending": "warn", "failed": "bad"}
"""The colour class of an outbox row's status (the word is always shown too)."""


class StatusPages:
    """The HTML views the server routes to: the overview, a job's page, and the stylesheet."""

    def __init__(self, sources: StatusSources) -> None:
        self._sources = sources

    async def home(self, *, paused: bool = False) -> str:
        """`GET /`: the overview as of now (`paused`: without reloading itself)."""
        page = await gather(self._sources)
        return render_overview(page, Where("", "./", page.refresh_s, paused))

    async def job(self, job: str, runs: int, *, paused: bool = False) -> tuple[int, str]:
        """`GET /jobs/{job}`: (200, the explanation) or (404, a page saying nothing matched)."""
        sources = self._sources
        now = sources.clock()
        found = await explain(sources.store, job, now=now, runs=runs, rules=sources.rules)
        where = Where("../", quote(job, safe=""), refresh_after(sources.polls()), paused)
        if found is None:
            body = f"<h1>No job {text(job)}</h1><p>No job has this id or name in the state.</p>"
            return 404, document("Unknown job", body, where=where, at=now)
        return 200, render_job(found, where)

    def asset(self, name: str) -> tuple[bytes, str] | None:
        """`GET /static/{name}`: the stylesheet or the icon (None: no such file)."""
        return asset(name)


def render_overview(page: Overview, where: Where) -> str:
    """The whole overview page."""
    body = "".join(
        (
            "<h1>Status</h1>",
            _summary(page),
            section("polls", "Polling", _polls(page.polls)),
            section("jobs", "Jobs by queue and state", _counts(page.counts)),
            section("events", "Recent events", _events(page.events, where)),
            section("long", "Running longer than usual", _long(page, where)),
            section("sinks", "Sinks", _sinks(page.sinks)),
        )
    )
    return document("Status", body, where=where, at=page.at, nav=NAV)


def _summary(page: Overview) -> str:
    """Health, readiness, role and job total as a description list."""
    health: Mapping[str, object] = page.health
    healthy = health.get("healthy") is True
    ready = health.get("ready") is True
    verdict = badge("healthy", "ok") if healthy else badge("unhealthy", "bad")
    items = (
        ("Health", f"{verdict} {text(health.get('reason', ''))}"),
        ("Ready", badge("ready", "ok") if ready else badge("not ready", "warn")),
        ("Role", text(health.get("role", "leader"))),
        ("Jobs in the snapshots", f"{page.counts.total:,}"),
        ("Version", text(page.version)),
    )
    pairs = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in items)
    return f'<dl class="summary">{pairs}</dl>'


def _polls(polls: tuple[PollRow, ...]) -> str:
    rows = (
        row(
            text(p.project),
            text(p.region),
            (badge("up", "ok") if p.up else badge("down", "bad"))
            + ("" if p.polling else " " + badge("stale", "warn")),
            when(p.last_success_at),
            str(p.consecutive_failures),
            f"{span(p.effective_s)} (configured {span(p.configured_s)})",
            numeric=(3,),
        )
        for p in polls
    )
    head = ("Project", "Region", "Last cycle", "Last success", "Failed cycles", "Interval")
    return table("Poll health per DLI project", head, rows, empty="No project is polled.")


def _counts(counts: Counts) -> str:
    head = ("Queue", "Project", *(text(s) for s in counts.states), "Total")
    numbers = tuple(range(1, len(counts.states) + 2))
    rows = (
        row(
            text(r.queue),
            text(f"{r.project} ({r.region})"),
            *(f"{n:,}" for n in r.counts),
            f"{r.total:,}",
            numeric=numbers,
        )
        for r in counts.rows
    )
    sums = [sum(r.counts[i] for r in counts.rows) for i in range(len(counts.states))]
    foot = row("All queues", "", *(f"{n:,}" for n in sums), f"{counts.total:,}", numeric=numbers)
    caption = "Jobs in the latest complete listing, per queue and state"
    return table(caption, head, rows, foot=foot, empty="No listing has completed yet.")


def _events(events: tuple[EventRow, ...], where: Where) -> str:
    rows = (
        row(
            when(e.story.observed_at),
            job_link(where, e.job_id, e.job_name or e.job_id),
            text(e.queue),
            _change(e.story),
            _delivery(e.story),
        )
        for e in events
    )
    head = ("Seen", "Job", "Queue", "What happened", "Delivery")
    return table("The newest events, newest first", head, rows, empty="No event yet.")


def _change(story: EventStory) -> str:
    """What an event says happened, in a few words."""
    if story.kind == "transition":
        return f"{text(story.from_state or 'new')} \u2192 {text(story.to_state or 'gone')}"
    return text(story.kind) + (f": {text(story.detail)}" if story.detail else "")


def _delivery(story: EventStory) -> str:
    """Each sink's outcome of an event, or why no sink got it."""
    if not story.sinks:
        return f'<span class="muted">not sent: {text(story.reason)}</span>'
    return "<ul>" + "".join(f"<li>{_sink_outcome(s)}</li>" for s in story.sinks) + "</ul>"


def _sink_outcome(sink: SinkStory) -> str:
    """`sink: <status> reason` (the reason without the status word it may start with)."""
    kind = STATUS_KIND.get(sink.status, "warn")
    reason = sink.reason.removeprefix(sink.status).lstrip(": ")
    return f"{text(sink.sink)}: {badge(sink.status, kind)} {text(reason, 300)}"


def _long(page: Overview, where: Where) -> str:
    rows = (
        row(
            job_link(where, r.job_id, r.name or r.job_id),
            text(r.queue),
            span(r.running_s),
            span(r.usual_s),
            text(r.limit_why) if r.limit_why else "\u2014",
            badge("overdue", "bad") if r.overdue else badge("long", "warn"),
        )
        for r in page.long_runners
    )
    head = ("Job", "Queue", "Running for", "Usual (p95)", "Overdue limit", "Verdict")
    shown = len(page.long_runners)
    jobs = "job" if page.long_total == 1 else "jobs"
    caption = f"{page.long_total:,} running {jobs} past the usual run time, worst first"
    if shown < page.long_total:
        caption += f" (the first {shown} shown)"
    return table(caption, head, rows, empty="No running job is past its usual run time.")


def _sinks(sinks: tuple[SinkRow, ...]) -> str:
    rows = (
        row(
            text(s.name),
            text(s.type),
            badge(s.health, {"ok": "ok", "failing": "bad"}.get(s.health, "muted")),
            _last(s),
            f"{s.pending:,}",
            when(s.oldest_pending) if s.pending else "\u2014",
            _budget(s),
            numeric=(3,),
        )
        for s in sinks
    )
    head = ("Sink", "Type", "Health", "Last attempt", "Outbox", "Oldest pending", "Budget")
    return table("Alert sinks", head, rows, empty="No sink is configured.")


def _last(sink: SinkRow) -> str:
    last = sink.last
    if last is None:
        return "none yet"
    failure = f" ({text(last.failure)})" if last.failure else ""
    return f"{text(last.outcome)}{failure} at {when(last.at)}"


def _budget(sink: SinkRow) -> str:
    if not sink.budget:
        return "no limit"
    parts = [f"{used} of {limit} per {span(length)}" for used, limit, length in sink.budget]
    wait = f"; next send at {when(sink.next_slot)}" if sink.next_slot is not None else ""
    return ", ".join(parts) + wait


# -- the job page ---------------------------------------------------------------------------------


def render_job(found: Explanation, where: Where) -> str:
    """A job's page: what `explain` says about each of its runs."""
    by = "its id" if found.matched_by == "id" else "its name"
    body = (
        f"<h1>Job {text(found.query, 500)}</h1>"
        f"<p>Found by {by}; {len(found.runs)} run(s), newest first."
        f' <a href="{where.href("")}">Back to the status page</a>.</p>'
    )
    body += "".join(_run(run, index) for index, run in enumerate(found.runs))
    return document(f"Job {text(found.query)}", body, where=where, at=found.at)


def _run(run: RunStory, index: int) -> str:
    facts = (
        ("Job id", text(run.job_id, 500)),
        ("Name", text(run.name, 500) if run.name else "\u2014"),
        ("Target", text(run.target)),
        ("Queue", text(run.queue)),
        ("Last state", text(run.state)),
    )
    details = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    if run.reason:
        details += f"<dt>Nothing sent</dt><dd>{text(run.reason, 500)}</dd>"
    seen = (
        row(when(s.seen_at), text(s.state.value), text(s.cycle_id), "yes" if s.baseline else "no")
        for s in run.sightings
    )
    events = (
        row(when(e.observed_at), _change(e), _routing(e.routing), _event_delivery(e))
        for e in run.events
    )
    rules = (row(text(v.rule), "yes" if v.fired else "no", text(v.why, 300)) for v in run.rules)
    body = "".join(
        (
            f'<dl class="summary">{details}</dl>',
            table("States seen", ("Seen", "State", "Cycle", "Baseline"), seen, empty="None."),
            table("Events", ("Seen", "What", "Routing", "Delivery"), events, empty="No event."),
            table("Lifecycle rules", ("Rule", "Fired", "Why"), rules, empty="No verdict."),
        )
    )
    return section(f"run-{index}", f"Run {text(run.job_id)}", body)


def _routing(record: RoutingRecord | None) -> str:
    """The routing decision in a few words."""
    if record is None:
        return "not recorded"
    if record.silence is not None:
        return f"silenced by silence #{record.silence.id} until {when(record.silence.until)}"
    matched = "; ".join(record.matched)
    words = f"matched {text(matched, 300)}" if matched else "no route matched: default sinks"
    sinks = ", ".join(text(p.sink) for p in record.plan) or "no sink"
    return f"{words} \u2192 {sinks}"


def _event_delivery(event: EventStory) -> str:
    """Each sink's outcome with every attempt, or why nothing was sent."""
    if not event.sinks:
        return _delivery(event)
    items = "".join(f"<li>{_sink_outcome(s)}{_attempts(s.attempts)}</li>" for s in event.sinks)
    return f"<ul>{items}</ul>"


def _attempts(attempts: tuple[Attempt, ...]) -> str:
    if not attempts:
        return ""
    items = "".join(
        f"<li>#{a.attempt} {when(a.at)} {text(a.outcome)}"
        + (f": {text(a.answer, 300)}" if a.answer else "")
        + (f"; next at {when(a.next_attempt_at)}" if a.next_attempt_at else "")
        + (f"; digest #{a.digest_id} of {a.digest_size}" if a.digest_id is not None else "")
        + "</li>"
        for a in attempts
    )
    return f'<ol class="attempts">{items}</ol>'
