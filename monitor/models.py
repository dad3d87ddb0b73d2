"""Domain values shared by every layer: job states, jobs, snapshots and events.

Everything here is immutable and free of I/O. Parsing of raw API payloads lives in
`monitor.dli.parse`; persistence in `monitor.store`; rendering in `monitor.sinks`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC datetime; injected so tests control time."""


def utc_now() -> datetime:
    """Return the current wall-clock time, aware, in UTC."""
    return datetime.now(UTC)


DEFAULT_PROJECT = "default"
"""The project name of a single `dli:` mapping (list entries name their own)."""
LOCAL_REGION = "local"
"""The region of a single `dli:` mapping whose endpoint names none (the simulator, a proxy)."""


@dataclass(frozen=True, slots=True)
class ProjectRef:
    """The DLI project a poll pipeline watches, as the layers below the config see it.

    `name` and `region` label every series, event and log line; `listed` (an entry of a `dli:`
    list) stores targets as `<name>/<queue>`, the single form as bare queue names, so state
    files written before projects existed go on without a new baseline. The key is also what
    `monitor.shard.target_key` hashes.
    """

    name: str = DEFAULT_PROJECT
    region: str = LOCAL_REGION
    listed: bool = False

    def key(self, target: str) -> str:
        """The store key of one of this project's targets (a queue, or `*`)."""
        return f"{self.name}/{target}" if self.listed else target


class JobState(StrEnum):
    """A batch job state, normalised to lower case.

    DLI documents the first five; the Livy states are accepted because DLI derives from Livy.
    Anything else becomes `UNKNOWN` (the raw value is kept on the `Job`).
    """

    STARTING = "starting"
    RUNNING = "running"
    RECOVERING = "recovering"
    SUCCESS = "success"
    DEAD = "dead"
    NOT_STARTED = "not_started"
    IDLE = "idle"
    BUSY = "busy"
    SHUTTING_DOWN = "shutting_down"
    ERROR = "error"
    KILLED = "killed"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, raw: object) -> JobState:
        """Normalise a raw API state: case-insensitive, whitespace-tolerant, else UNKNOWN."""
        if not isinstance(raw, str):
            return cls.UNKNOWN
        try:
            return cls(raw.strip().lower())
        except ValueError:
            return cls.UNKNOWN

    @property
    def is_terminal(self) -> bool:
        """True when the job can never change state again."""
        return self in _TERMINAL

    @property
    def is_failure(self) -> bool:
        """True for terminal states that mean the job did not succeed."""
        return self in _FAILURE


_TERMINAL = frozenset({JobState.SUCCESS, JobState.DEAD, JobState.ERROR, JobState.KILLED})
_FAILURE = frozenset({JobState.DEAD, JobState.ERROR, JobState.KILLED})

DLI_STATES: tuple[JobState, ...] = (
    JobState.STARTING,
    JobState.RUNNING,
    JobState.RECOVERING,
    JobState.SUCCESS,
    JobState.DEAD,
)
"""The states DLI documents; metrics pre-initialise these for every queue."""


@dataclass(frozen=True, slots=True)
class Job:
    """One batch job as seen in one listing, already parsed and redacted."""

    id: str
    state: JobState
    queue: str
    name: str = ""
    owner: str = ""
    app_id: str = ""
    sc_type: str = ""
    raw_state: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None
    duration_ms: int | None = None
    log_tail: tuple[str, ...] = ()
    state_since: datetime | None = None
    """When we first saw the job in its current state; set by the differ, not the API."""

    def same_record(self, other: Job) -> bool:
        """True when nothing worth persisting differs between the two sightings."""
        return self == other


class EventKind(StrEnum):
    """What kind of thing happened to a job."""

    TRANSITION = "transition"
    APPEARED = "appeared"
    VANISHED = "vanished"
    STUCK = "stuck"
    """A lifecycle rule: too long in `starting` or `recovering` (see `monitor.rules`)."""
    OVERDUE = "overdue"
    """A lifecycle rule: running longer than its limit or than usual for its name."""
    RECOVERED = "recovered"
    """A lifecycle rule: a job name whose previous run failed has now succeeded."""

    @property
    def is_rule(self) -> bool:
        """True for events derived by the lifecycle rules rather than by a state change."""
        return self in (EventKind.STUCK, EventKind.OVERDUE, EventKind.RECOVERED)


@dataclass(frozen=True, slots=True)
class Event:
    """Something worth telling people about one job, found by comparing two snapshots.

    `job` is the newest sighting of the job (for `vanished`, the last one we had).
    `from_state` is None for `appeared`; `to_state` is None for `vanished`.
    `event_id` is stable across retries and restarts (see `event_id_for`).
    `streak` counts the consecutive failures of the job's name including this one (for a
    `recovered` event: the failures it ends); 0 when unknown. `detail` says why a lifecycle
    rule fired, e.g. "in starting for 17m (limit 15m)". `project` and `region` name the DLI
    project the job runs in (`default` and an empty region for events stored before projects
    existed); `target` is the project's store key of the target, so ids differ across projects.
    """

    event_id: str
    kind: EventKind
    target: str
    job: Job
    from_state: JobState | None
    to_state: JobState | None
    observed_at: datetime
    streak: int = 0
    detail: str = ""
    project: str = DEFAULT_PROJECT
    region: str = ""

    @property
    def queue(self) -> str:
        """The queue the job runs on."""
        return self.job.queue

    @property
    def is_failure(self) -> bool:
        """True when the job ended badly (or disappeared while it was still active)."""
        if self.kind is EventKind.VANISHED:
            return True
        return self.to_state is not None and self.to_state.is_failure


def event_id_for(
    target: str,
    job_id: str,
    kind: EventKind,
    from_state: JobState | None,
    to_state: JobState | None,
    anchor: datetime | None,
) -> str:
    """A stable id for one change, the same however often that change is derived.

    `anchor` is what pins the change in time without depending on when we noticed it:
    the `state_since` of the previous sighting (unchanged until a cycle commits). A retried
    page or a restart that re-derives the same change therefore yields the same id, and the
    store ignores the second copy, while a later, genuinely new change gets a new id.
    """
    parts = (
        target,
        job_id,
        kind.value,
        from_state.value if from_state else "",
        to_state.value if to_state else "",
        anchor.isoformat() if anchor else "",
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class NameHistory:
    """What the lifecycle rules remember about one job name on one target."""

    name: str
    durations_s: tuple[float, ...] = ()
    """Durations of the most recent successful runs, oldest first (bounded by the rules)."""
    failures: int = 0
    """Consecutive failures up to and including the last run."""
    last_outcome: str = ""
    """`success`, `failure`, or empty before the first finished run."""


@dataclass(frozen=True, slots=True)
class RuleMark:
    """A lifecycle rule that has fired for one job while it stays in the state `anchor` pins."""

    job_id: str
    rule: str
    anchor: datetime | None


@dataclass(frozen=True, slots=True)
class RuleMemory:
    """The persisted rule state of one target: per-name history and the rules already fired."""

    names: Mapping[str, NameHistory]
    marks: Mapping[tuple[str, str], RuleMark]
    """Keyed by (job id, rule)."""


@dataclass(frozen=True, slots=True)
class HistoryUpdate:
    """What one poll changes in the rule state; the store writes it with the poll's commit."""

    names: tuple[NameHistory, ...] = ()
    """Histories to insert or replace."""
    marks_added: tuple[RuleMark, ...] = ()
    marks_cleared: tuple[tuple[str, str], ...] = ()
    """(job id, rule) of marks to delete."""


@dataclass(frozen=True, slots=True)
class PollMark:
    """Where incremental polling of one target stands; committed with its snapshot."""

    high_water: datetime | None
    """The newest `create_time` a complete walk of the newest-first listing has reached."""
    baseline_floor: datetime | None
    """Jobs created before this existed when the target's baseline was taken: seeing one for
    the first time is not news. None when the baseline saw every job (a full listing)."""


SINK_FAILURE_KINDS: tuple[str, ...] = (
    "timeout",
    "connection",
    "tls",
    "http_4xx",
    "http_5xx",
    "throttled",
    "vendor_error",
    "other",
)
"""Why a send to a sink failed, in a word: the `reason` label of delivery failure metrics."""

Snapshot = Mapping[str, Job]
"""The jobs of one target keyed by job id, as of one complete listing."""


@dataclass(frozen=True, slots=True)
class QueueResult:
    """How one target's poll went, for the cycle summary and `once`."""

    target: str
    ok: bool
    jobs: int = 0
    events: int = 0
    baseline: bool = False
    error: str = ""
    reason: str = ""
    """Why a failed poll failed (the `reason` label of `dli_monitor_poll_errors_total`)."""


@dataclass(frozen=True, slots=True)
class CycleReport:
    """The outcome of one cycle over every target: the canonical log line's content."""

    results: tuple[QueueResult, ...]
    delivered: int
    failed: int
    pending: int
    duration_s: float

    @property
    def ok(self) -> bool:
        """True when every target polled successfully."""
        return all(r.ok for r in self.results)

    @property
    def failure_reasons(self) -> frozenset[str]:
        """The reasons of the targets that failed this cycle (empty when all polled)."""
        return frozenset(r.reason for r in self.results if not r.ok)

    @property
    def events(self) -> int:
        """Events found across every target this cycle."""
        return sum(r.events for r in self.results)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message for one sink: a single event, or a digest that collapses several.

    The dispatcher builds these from outbox rows (a digest when a sink's rate budget cannot
    carry one message per event); sinks render and send them. Every event is in exactly one
    delivered notification, or recorded as failed.
    """

    sink: str
    events: tuple[Event, ...]

    @property
    def is_digest(self) -> bool:
        """True when the notification carries more than one event."""
        return len(self.events) > 1

    @property
    def notification_id(self) -> str:
        """Stable across retries: the event id, or a hash of a digest's sorted event ids."""
        if len(self.events) == 1:
            return self.events[0].event_id
        joined = "\x1f".join(sorted(e.event_id for e in self.events))
        return hashlib.sha256(joined.encode()).hexdigest()[:32]
