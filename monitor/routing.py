"""Routing: which sinks get an event, and from when (quiet hours delay, they never drop).

Pure: no I/O and no clock reads; `now` is passed in. `Router.decide(event, now, silences)`
walks the routes in order: every route whose match holds contributes its sinks, and the walk
stops at the first match unless that route has `continue`. No match: the default sinks (all
configured sinks, or `default_sinks`). A route inside its quiet hours contributes its sinks at
the end of the quiet period; a sink reached by several routes takes the earliest time. An
active silence covering the job wins over everything: the event gets no sink at all (it is
still committed by the caller, so nothing is lost). The dispatcher's budgets later collapse a
backlog released at the end of quiet hours into digests.

The silences come from an injected async `SilenceSource` (the store's `active_silences`),
read once per commit by `for_commit`; `decide` itself takes them as an argument. The routing
pass of a commit returns, per event, a `RoutingRecord` (`monitor.models_explain`): the plan and
why (routes matched, quiet hours, the silence, or why no sink got it), which the store keeps
for `dli-monitor explain`.

What does not live here: the config models (`monitor.config.routing`), the silence model
(`monitor.models_silence`), storing outbox rows (`monitor.store`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from fnmatch import fnmatchcase
from zoneinfo import ZoneInfo

from monitor.config.routing import RouteSettings, weekday_numbers
from monitor.models import Event, EventKind, JobState
from monitor.models_explain import PlannedSink, RoutingRecord, SilenceNote
from monitor.silences import Silence, silencing

Plan = tuple[tuple[str, datetime], ...]
"""(sink, first attempt time) per sink that gets the event, in route then sink order."""

SilenceSource = Callable[[datetime], Awaitable[Iterable[Silence]]]
"""Returns the silences active at a moment (e.g. `Store.active_silences`)."""


async def no_silences(now: datetime) -> tuple[Silence, ...]:
    """A `SilenceSource` with no silences."""
    return ()


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily quiet period `[start, end)` in a time zone, starting on some weekdays."""

    start: time
    end: time
    zone: tzinfo = UTC
    days: frozenset[int] = frozenset(range(7))
    """Weekdays (Monday = 0) on which a quiet period starts."""

    def _window(self, day: date) -> tuple[datetime, datetime]:
        """The quiet period starting on local `day`, as aware datetimes."""
        begin = datetime.combine(day, self.start, tzinfo=self.zone)
        end_day = day if self.end > self.start else day + timedelta(days=1)
        return begin, datetime.combine(end_day, self.end, tzinfo=self.zone)

    def _containing(self, moment: datetime) -> datetime | None:
        """The end of the quiet period that holds `moment`, or None (compared in UTC)."""
        moment = moment.astimezone(UTC)
        local = moment.astimezone(self.zone).date()
        for day in (local - timedelta(days=1), local):
            if day.weekday() not in self.days:
                continue
            begin, end = self._window(day)
            if begin <= moment < end:
                return end
        return None

    def release_at(self, now: datetime) -> datetime | None:
        """When a notification held at `now` may go (back-to-back periods chain), else None."""
        end = self._containing(now)
        if end is None:
            return None
        for _ in range(8):  # a week of back-to-back periods at most
            later = self._containing(end)
            if later is None or later <= end:
                break
            end = later
        return end.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Route:
    """A compiled route: match conditions (empty = any), target sinks, continue, quiet hours."""

    sinks: tuple[str, ...]
    queue: str | None = None
    project: str | None = None
    job_name: str | None = None
    kinds: frozenset[EventKind] = frozenset()
    from_states: frozenset[JobState] = frozenset()
    to_states: frozenset[JobState] = frozenset()
    continue_: bool = False
    quiet_hours: QuietHours | None = None
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = re.compile(self.job_name) if self.job_name is not None else None
        object.__setattr__(self, "_pattern", pattern)

    @classmethod
    def from_settings(cls, settings: RouteSettings) -> Route:
        """The compiled form of one configured route."""
        match, quiet = settings.match, settings.quiet_hours
        return cls(
            sinks=tuple(settings.sinks),
            queue=match.queue,
            project=match.project,
            job_name=match.job_name,
            kinds=frozenset(EventKind(k) for k in match.kind or ()),
            from_states=frozenset(JobState(s) for s in match.from_state or ()),
            to_states=frozenset(JobState(s) for s in match.to_state or ()),
            continue_=settings.continue_,
            quiet_hours=None
            if quiet is None
            else QuietHours(
                start=time.fromisoformat(quiet.start),
                end=time.fromisoformat(quiet.end),
                zone=ZoneInfo(quiet.timezone),
                days=weekday_numbers(quiet.days),
            ),
        )

    def matches(self, event: Event) -> bool:
        """True when every condition of the route holds for the event."""
        if self.project is not None and not fnmatchcase(event.project, self.project):
            return False
        if self.queue is not None and not fnmatchcase(event.queue, self.queue):
            return False
        if self._pattern is not None and self._pattern.fullmatch(event.job.name) is None:
            return False
        if self.kinds and event.kind not in self.kinds:
            return False
        if self.from_states and event.from_state not in self.from_states:
            return False
        return not self.to_states or event.to_state in self.to_states

    def describe(self) -> str:
        """The route's match as `key=value` words (`any event` when it has none)."""
        words = [
            f"{key}={value}"
            for key, value in (
                ("project", self.project),
                ("queue", self.queue),
                ("job_name", self.job_name),
                ("kind", _listed(self.kinds)),
                ("from_state", _listed(self.from_states)),
                ("to_state", _listed(self.to_states)),
            )
            if value
        ]
        return " ".join(words) or "any event"


def _listed(values: frozenset[EventKind] | frozenset[JobState]) -> str:
    return ",".join(sorted(value.value for value in values))


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one event goes: the plan, which routes matched, and the silence that muted it."""

    plan: Plan
    routes: tuple[int, ...]
    """Indexes of the matched routes; empty when the default route applied."""
    silenced_by: Silence | None = None
    sources: tuple[int | None, ...] = ()
    """Per planned sink, the index of the route that gives its (earliest) time; None: default."""

    @property
    def unrouted(self) -> bool:
        """True when no silence applied and still no sink gets the event (a `sinks: []` route)."""
        return self.silenced_by is None and not self.plan


class Router:
    """Applies the configured routes and the active silences to events."""

    def __init__(
        self,
        routes: Sequence[Route],
        sinks: Sequence[str],
        *,
        default_sinks: Sequence[str] | None = None,
        silences: SilenceSource = no_silences,
    ) -> None:
        """Routes in config order; `sinks` are every configured sink name, in config order."""
        known = set(sinks)
        named = [s for r in routes for s in r.sinks] + list(default_sinks or ())
        unknown = sorted({s for s in named if s not in known})
        if unknown:
            raise ValueError(f"routes name unconfigured sinks: {', '.join(unknown)}")
        self._routes = tuple(routes)
        self._default = tuple(dict.fromkeys(sinks if default_sinks is None else default_sinks))
        self._configured = bool(sinks)
        self._silences = silences

    @classmethod
    def from_settings(
        cls,
        routes: Sequence[RouteSettings],
        sinks: Sequence[str],
        *,
        default_sinks: Sequence[str] | None = None,
        silences: SilenceSource = no_silences,
    ) -> Router:
        """A router from the `routes:` and `default_sinks:` config keys."""
        return cls(
            [Route.from_settings(r) for r in routes],
            sinks,
            default_sinks=default_sinks,
            silences=silences,
        )

    def decide(self, event: Event, now: datetime, silences: Iterable[Silence] = ()) -> Decision:
        """Where the event goes at `now`, given the silences to consider."""
        muted = silencing(silences, event, now)
        if muted is not None:
            return Decision(plan=(), routes=(), silenced_by=muted)
        earliest: dict[str, tuple[datetime, int | None]] = {}
        matched: list[int] = []
        failure = _as_failure(event) if event.kind is EventKind.RECOVERED else None
        for index, route in enumerate(self._routes):
            if not (route.matches(event) or (failure is not None and route.matches(failure))):
                continue
            matched.append(index)
            release = route.quiet_hours.release_at(now) if route.quiet_hours else None
            for sink in route.sinks:
                at = release or now
                if sink not in earliest or at < earliest[sink][0]:
                    earliest[sink] = (at, index)
            if not route.continue_:
                break
        if not matched:
            earliest = dict.fromkeys(self._default, (now, None))
        return Decision(
            plan=tuple((sink, at) for sink, (at, _) in earliest.items()),
            routes=tuple(matched),
            sources=tuple(index for _, index in earliest.values()),
        )

    def record(self, event: Event, decision: Decision, now: datetime) -> RoutingRecord:
        """What `explain` keeps of a decision made at `now`: the plan and why."""
        silence = decision.silenced_by
        plan = tuple(
            PlannedSink(sink, at, route=index, quiet_until=at if at > now else None)
            for (sink, at), index in zip(decision.plan, decision.sources, strict=True)
        )
        return RoutingRecord(
            plan=plan,
            matched=tuple(f"#{i} {self._routes[i].describe()}" for i in decision.routes),
            default=silence is None and not decision.routes,
            silence=None
            if silence is None
            else SilenceNote(silence.id, silence.ends_at, _what(silence)),
            unrouted=self._unrouted(event, decision),
            rule=_rule(event),
        )

    def _unrouted(self, event: Event, decision: Decision) -> str:
        """Why no sink gets the event although no silence muted it (empty when one does)."""
        if decision.plan or decision.silenced_by is not None:
            return ""
        if decision.routes:
            named = ", ".join(f"#{i}" for i in decision.routes)
            return f"matched route {named}, which names no sinks"
        why = "default_sinks is empty" if self._configured else "no sinks are configured"
        return (
            f"no route matched: kind={event.kind.value} queue={event.queue}"
            f" project={event.project} job_name={event.job.name or '-'}, and {why}"
        )

    async def deliveries(self, event: Event, now: datetime) -> Plan:
        """(sink, first attempt time) for the event, silences read from the source."""
        return self.decide(event, now, await self._silences(now)).plan

    async def for_commit(self, now: datetime) -> RoutingPass:
        """A routing callable for one `Store.commit_poll`, reading the silences once."""
        return RoutingPass(self, now, tuple(await self._silences(now)))


def _what(silence: Silence) -> str:
    """A silence's match and comment, as `explain` shows it."""
    words = [f"job_name={silence.job_name}"]
    if silence.project_glob is not None:
        words.append(f"project={silence.project_glob}")
    if silence.queue_glob is not None:
        words.append(f"queue={silence.queue_glob}")
    text = " ".join(words)
    return f"{text}, comment {silence.comment!r}" if silence.comment else text


def _rule(event: Event) -> str:
    """What the lifecycle rules said about the event (empty when nothing)."""
    if event.kind.is_rule:
        return f"{event.kind.value}: {event.detail}" if event.detail else event.kind.value
    if event.streak > 1:
        return f"failure streak: {event.streak} in a row"
    return ""


def _as_failure(event: Event) -> Event:
    """A `recovered` event seen as the failure it follows, so it reaches the same routes."""
    return dataclasses.replace(
        event, kind=EventKind.TRANSITION, from_state=JobState.RUNNING, to_state=JobState.DEAD
    )


class RoutingPass:
    """`Router` bound to one moment and one read of the silences; records what it muted.

    Pass it as `commit_poll(..., routing=pass_)`: the store calls it for new events only, so
    `silenced` and `unrouted` count each event once, however often a poll is retried.
    """

    def __init__(self, router: Router, now: datetime, silences: tuple[Silence, ...]) -> None:
        """Bind `router` to `now` and a fixed set of silences."""
        self._router = router
        self._now = now
        self._silences = silences
        self.silenced: list[tuple[Event, Silence]] = []
        """Events an active silence muted, with that silence."""
        self.unrouted: list[Event] = []
        """Events that matched a route with no sinks."""

    def __call__(self, event: Event) -> RoutingRecord:
        """The decision for one event; it iterates as (sink, first attempt time) pairs."""
        decision = self._router.decide(event, self._now, self._silences)
        if decision.silenced_by is not None:
            self.silenced.append((event, decision.silenced_by))
        elif decision.unrouted:
            self.unrouted.append(event)
        return self._router.record(event, decision, self._now)
