"""Scenarios: recurring job lifecycles that drive a simulated world over time.

A scenario (YAML, validated by pydantic) names the queues, the jobs that already exist (history)
and lifecycles: "submit a job called X on queue Q every N seconds; it stays `starting` 4 s,
`running` 10 s, then ends `success`". `ScenarioDriver.advance(now)` applies every submission and
transition due up to `now`, in time order, stamping each with the moment it was due, so the
world's state depends only on the times given, never on how often `advance` is called.
`run` is the live loop used by `dli-monitor simulate` and `demo`. No HTTP here.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)

from monitor.simulator.world import World

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_STATE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

HISTORY_SPACING = timedelta(hours=1)
"""How far apart the history jobs of one entry were created, going back from the start."""

HISTORY_RUNTIME = timedelta(minutes=7)
"""How long a history job ran before reaching its state."""

DEAD_LOG = (
    "stderr: java.sql.SQLException: connection refused: "
    "jdbc:postgresql://warehouse-db:5432/etl?user=etl_loader&password=hunter2",
    "YARN Diagnostics: User class threw exception: java.lang.OutOfMemoryError: Java heap space",
)
"""The last log lines of a job that died; one carries a credential to exercise redaction."""

_STATE_LOG = {
    "running": "stdout: Spark driver started, executors allocated",
    "recovering": "stderr: Driver lost, resubmitting (attempt 2 of 3)",
    "success": "stdout: Spark application finished with final status SUCCEEDED",
}


class ScenarioError(ValueError):
    """A scenario file that cannot be read or does not validate; the message lists why."""


def parse_seconds(value: object) -> float:
    """Seconds from a number or a text like `500ms`, `2s`, `10m`, `1h`; ValueError if invalid."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 2s, 10m, 1h)")
    if seconds < 0:
        raise ValueError(f"duration must not be negative: {value!r}")
    return seconds


Seconds = Annotated[float, BeforeValidator(parse_seconds)]


@dataclass(frozen=True, slots=True)
class Step:
    """One stop on a lifecycle path: a state and how long a job stays there (None = final)."""

    state: str
    seconds: float | None


def parse_step(value: object) -> Step:
    """A path entry such as `running 10s`, or just `success` for the final state."""
    if not isinstance(value, str) or not value.split():
        raise ValueError(f"a step is 'STATE DURATION' or 'STATE', got {value!r}")
    state, *rest = value.split(maxsplit=1)
    if not _STATE.match(state):
        raise ValueError(f"invalid state name {state!r}")
    return Step(state, parse_seconds(rest[0]) if rest else None)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HistoryJobs(_Model):
    """Jobs that exist before the scenario starts, all in one state."""

    name: str = Field(min_length=1, max_length=128)
    queue: str = Field(min_length=1)
    state: str = Field(pattern=_STATE.pattern)
    count: int = Field(default=1, ge=1, le=10_000)
    owner: str = "sim"


class Lifecycle(_Model):
    """A job submitted every `every` seconds that walks `path` (the last step is final)."""

    name: str = Field(min_length=1, max_length=128)
    queue: str = Field(min_length=1)
    every: Seconds = Field(gt=0)
    path: tuple[Annotated[Step, PlainValidator(parse_step)], ...] = Field(min_length=1)
    start: Seconds = 0.0
    owner: str = "sim"

    @model_validator(mode="after")
    def _only_last_step_is_final(self) -> Lifecycle:
        for index, step in enumerate(self.path[:-1]):
            if step.seconds is None:
                raise ValueError(f"path step {index} ({step.state}) needs a duration")
        if self.path[-1].seconds is not None:
            raise ValueError(f"the last path step ({self.path[-1].state}) is final: no duration")
        return self


class Scenario(_Model):
    """Queues, history and lifecycles of one simulated project."""

    queues: tuple[str, ...] = Field(min_length=1)
    tick: Seconds = Field(default=2.0, gt=0)
    jobs: tuple[HistoryJobs, ...] = ()
    lifecycles: tuple[Lifecycle, ...] = ()

    @model_validator(mode="after")
    def _queues_are_declared(self) -> Scenario:
        used = [(f"jobs.{i}", job.queue) for i, job in enumerate(self.jobs)]
        used += [(f"lifecycles.{i}", cycle.queue) for i, cycle in enumerate(self.lifecycles)]
        for where, queue in used:
            if queue not in self.queues:
                raise ValueError(f"{where}: queue {queue!r} is not in queues {list(self.queues)}")
        return self


def _describe(exc: ValidationError) -> str:
    """One line per problem, each with its key path."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)


def parse_scenario(data: Any, *, source: str = "scenario") -> Scenario:
    """Validate already-parsed YAML data; raises ScenarioError listing every problem."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{source} is invalid:\n{_describe(exc)}") from None


def _from_yaml(text: str, source: str) -> Scenario:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source} is not valid YAML: {exc}") from None
    return parse_scenario(data, source=source)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file; raises ScenarioError with every problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
    return _from_yaml(text, str(path))


def default_scenario() -> Scenario:
    """The lively built-in scenario (`demo.yaml`) used by `demo` and `simulate`."""
    text = resources.files("monitor.simulator").joinpath("demo.yaml").read_text(encoding="utf-8")
    return _from_yaml(text, "demo.yaml")


@dataclass(order=True)
class _Due:
    """Something the driver must do at `at`; `seq` keeps equal times in creation order."""

    at: datetime
    seq: int
    lifecycle: int
    job_id: str | None = None
    step: int = 0


class ScenarioDriver:
    """Applies a scenario's submissions and transitions to a world as time passes."""

    def __init__(self, world: World, scenario: Scenario) -> None:
        self.world = world
        self.scenario = scenario
        self.started: datetime | None = None
        self._queue: list[_Due] = []
        self._seq = 0

    def advance(self, now: datetime) -> None:
        """Apply everything due up to and including `now` (the first call sets the start)."""
        if self.started is None:
            self._begin(now)
        while self._queue and self._queue[0].at <= now:
            self._apply(heapq.heappop(self._queue))

    async def run(
        self,
        stop: asyncio.Event,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Advance to the world's clock every `tick` until `stop` is set."""
        while not stop.is_set():
            self.advance(self.world.clock())
            napping = asyncio.ensure_future(sleep(self.scenario.tick))
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({napping, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (napping, stopping):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    def _begin(self, start: datetime) -> None:
        self.started = start
        for history in self.scenario.jobs:
            for created in _history_times(start, history.count):
                self._add_history(history, created)
        for index, lifecycle in enumerate(self.scenario.lifecycles):
            self._push(start + timedelta(seconds=lifecycle.start), index)

    def _add_history(self, history: HistoryJobs, created: datetime) -> None:
        job = self.world.add_job(
            queue=history.queue,
            name=history.name,
            state="starting",
            owner=history.owner,
            created=created,
        )
        self._enter(job.id, history.state, created + HISTORY_RUNTIME)

    def _apply(self, due: _Due) -> None:
        lifecycle = self.scenario.lifecycles[due.lifecycle]
        if due.job_id is None:  # a submission: create the job, plan the next submission
            first = lifecycle.path[0]
            job = self.world.add_job(
                queue=lifecycle.queue,
                name=lifecycle.name,
                state=first.state,
                owner=lifecycle.owner,
                created=due.at,
            )
            self._after_entering(due.at, due.lifecycle, job.id, 0)
            self._push(due.at + timedelta(seconds=lifecycle.every), due.lifecycle)
            return
        if due.job_id not in self.world.jobs:  # removed by a test meanwhile
            return
        self._enter(due.job_id, lifecycle.path[due.step].state, due.at)
        self._after_entering(due.at, due.lifecycle, due.job_id, due.step)

    def _after_entering(self, at: datetime, lifecycle: int, job_id: str, step: int) -> None:
        """Plan the move to the next step, if the job does not stay where it is."""
        seconds = self.scenario.lifecycles[lifecycle].path[step].seconds
        if seconds is not None:
            self._push(at + timedelta(seconds=seconds), lifecycle, job_id, step + 1)

    def _enter(self, job_id: str, state: str, at: datetime) -> None:
        """Move a job to `state` at `at`, with the log lines DLI would show."""
        if state.lower() == "dead":
            self.world.set_state(job_id, state, log_line=DEAD_LOG[0], at=at)
            self.world.append_log(job_id, DEAD_LOG[1])
        else:
            line = _STATE_LOG.get(state.lower(), f"stdout: state {state}")
            self.world.set_state(job_id, state, log_line=line, at=at)

    def _push(self, at: datetime, lifecycle: int, job_id: str | None = None, step: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Due(at, self._seq, lifecycle, job_id, step))


def _history_times(start: datetime, count: int) -> Iterator[datetime]:
    """Creation times of `count` history jobs, oldest first, the newest one spacing ago."""
    for back in range(count, 0, -1):
        yield start - back * HISTORY_SPACING
