"""Configuration of routing: `routes:` (which events go to which sinks) and their quiet hours.

Each route has a `match` (every given condition must hold; an empty match matches every
event), the `sinks` it sends to, `continue` (keep looking at later routes after a match) and
optional `quiet_hours`. Values are checked here, at load time: job-name regexes compile, time
zones exist, states and event kinds are known. `sink_name_problems` checks that every sink a
route names is configured; `Settings` calls it so problems carry their key paths.

What does not live here: applying routes to events (`monitor.routing`), silences
(`monitor.silences`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, model_validator
from pydantic_core import InitErrorDetails

from monitor.config.base import ConfigModel
from monitor.config.fields import Kind, SinkName, problem
from monitor.models import EventKind, JobState

_CLOCK_TIME = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names in `datetime.weekday()` order (Monday = 0)."""


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _sexagesimal(value: object) -> object:
    """YAML 1.1 reads an unquoted `22:00` as the base-60 number 1320: turn it back."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return f"{value // 60:02d}:{value % 60:02d}"
    return value


def _clock_time(value: str) -> str:
    if not _CLOCK_TIME.fullmatch(value.strip()):
        raise ValueError('must be a time of day as HH:MM, e.g. "22:00"')
    hours, minutes = value.strip().split(":")
    return f"{int(hours):02d}:{minutes}"


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError('not a known IANA time zone, e.g. "Asia/Shanghai" or "UTC"') from None
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


def _state(value: str) -> str:
    if value not in {state.value for state in JobState}:
        raise ValueError("not a job state: " + ", ".join(state.value for state in JobState))
    return value


def _kind(value: str) -> str:
    if value not in {kind.value for kind in EventKind}:
        raise ValueError("not an event kind: " + ", ".join(kind.value for kind in EventKind))
    return value


ClockTime = Annotated[
    str, BeforeValidator(_sexagesimal), AfterValidator(_clock_time), Kind("HH:MM")
]
TimeZone = Annotated[str, AfterValidator(_time_zone), Kind("time zone")]
Regex = Annotated[str, Field(min_length=1), AfterValidator(_regex), Kind("regex")]
Glob = Annotated[str, Field(min_length=1), Kind("glob")]
StateName = Annotated[str, BeforeValidator(_lower), AfterValidator(_state), Kind("job state")]
KindName = Annotated[str, BeforeValidator(_lower), AfterValidator(_kind), Kind("event kind")]
Day = Annotated[Weekday, BeforeValidator(_lower)]


class QuietHoursSettings(ConfigModel):
    """A daily period in which a route's notifications wait, to be sent when it ends."""

    start: ClockTime = Field(description='When the quiet period starts, "HH:MM" local time.')
    end: ClockTime = Field(
        description="When it ends; earlier than start = the next day; equal = 24 hours."
    )
    timezone: TimeZone = Field(default="UTC", description="IANA time zone of start and end.")
    days: list[Day] | None = Field(
        default=None,
        min_length=1,
        description="Weekdays (mon-sun) on which a quiet period starts; default every day.",
    )

    @model_validator(mode="after")
    def _not_always_quiet(self) -> QuietHoursSettings:
        if self.start == self.end and (self.days is None or len(set(self.days)) == 7):
            raise ValueError(
                "start equal to end on every day holds notifications forever;"
                " use a route with sinks: [] to notify nobody"
            )
        return self


class RouteMatch(ConfigModel):
    """Conditions on an event; all given ones must hold, and a list means any of its values."""

    project: Glob | None = Field(
        default=None,
        description="Project name glob, e.g. prod-*; a single `dli:` mapping's project is"
        " `default`.",
    )
    queue: Glob | None = Field(default=None, description="Queue name glob, e.g. etl_*.")
    job_name: Regex | None = Field(
        default=None, description="Regex the whole job name must match (e.g. nightly_.*)."
    )
    kind: list[KindName] | None = Field(
        default=None,
        min_length=1,
        description="Event kinds: transition, appeared, vanished, stuck, overdue, recovered.",
    )
    from_state: list[StateName] | None = Field(
        default=None, min_length=1, description="States the job came from."
    )
    to_state: list[StateName] | None = Field(
        default=None, min_length=1, description="States the job went to."
    )


class RouteSettings(ConfigModel):
    """One route: events that match go to `sinks`; the first match wins unless `continue`."""

    match: RouteMatch = Field(
        default_factory=RouteMatch, description="Which events; empty = every event."
    )
    sinks: list[SinkName] = Field(
        description="Names of the sinks to notify; [] = match and notify nobody."
    )
    continue_: bool = Field(
        default=False,
        alias="continue",
        description="Also try the routes after this one when it matches.",
    )
    quiet_hours: QuietHoursSettings | None = Field(
        default=None, description="Hold notifications in this period; send them when it ends."
    )


def sink_name_problems(
    routes: object, default_sinks: object, sinks: object
) -> list[InitErrorDetails]:
    """Problems for every sink name in routes/default_sinks that `sinks` does not configure.

    Works on the raw input (lists of mappings), so it can report alongside other problems.
    """
    known = {
        item.get("name")
        for item in (sinks if isinstance(sinks, list) else [])
        if isinstance(item, dict)
    }
    problems: list[InitErrorDetails] = []

    def check(names: object, loc: tuple[str | int, ...]) -> None:
        for index, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name not in known:
                problems.append(problem((*loc, index), f"no sink named '{name}' in sinks"))

    for index, route in enumerate(routes if isinstance(routes, list) else []):
        if isinstance(route, dict):
            check(route.get("sinks"), ("routes", index, "sinks"))
    check(default_sinks, ("default_sinks",))
    return problems


def weekday_numbers(days: Iterable[str] | None) -> frozenset[int]:
    """Weekday names as `datetime.weekday()` numbers; None means every day."""
    if days is None:
        return frozenset(range(7))
    return frozenset(WEEKDAYS.index(day) for day in days)
