"""The `Silence` value: "say nothing about jobs named like this, on these queues, until then".

A domain value like those in `monitor.models` (kept apart only to keep that module short): the
store persists it and the router applies it, so it lives below both. A `Silence` is active at
`now` when `starts_at <= now < ends_at`; it covers a job when its `job_name` regex matches the
job's whole name (anchored, as in Alertmanager: use `.*etl.*` for a part) and, when given, its
`queue` glob matches the job's queue. A silence limited to DLI projects keeps its scope in the
same field as `<project glob>/<queue glob>` (`prod-*/etl*`, `prod/*`): queue and project names
never hold a `/`, so the store keeps one column and every backend reads it the same way.

What does not live here: choosing the silence that mutes an event (`monitor.silences`), storing
silences (`monitor.store`), the CLI that adds and expires them (`monitor.cli`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import fnmatchcase

from monitor.models import DEFAULT_PROJECT, Event


class SilenceError(ValueError):
    """A silence cannot be built: a bad regex, an empty pattern or an end before its start."""


def compile_job_name(pattern: str) -> re.Pattern[str]:
    """Compile a job-name regex, or raise `SilenceError` naming the problem (not the input)."""
    if not pattern:
        raise SilenceError("job-name regex must not be empty (use .* for every job)")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise SilenceError(f"job-name is not a valid regular expression: {exc}") from None


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence: job-name regex, optional `[project glob/]queue glob`, and its period."""

    id: int
    job_name: str
    starts_at: datetime
    ends_at: datetime
    queue: str | None = None
    comment: str = ""
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise SilenceError("silence times must be timezone-aware")
        if self.ends_at < self.starts_at:
            raise SilenceError("a silence cannot end before it starts")
        if self.queue is not None and not self.queue:
            raise SilenceError("queue glob must not be empty (leave it out for every queue)")
        if self.queue is not None and "/" in self.queue:
            project, _, queue = self.queue.partition("/")
            if not project or not queue or "/" in queue:
                raise SilenceError("a scoped silence is PROJECT-GLOB/QUEUE-GLOB, both non-empty")
        object.__setattr__(self, "_pattern", compile_job_name(self.job_name))

    @staticmethod
    def scoped(queue: str | None, project: str | None) -> str | None:
        """The `queue` field for a queue glob limited to projects matching `project`."""
        if project is None:
            return queue
        if not project or "/" in project:
            raise SilenceError("project glob must be non-empty and free of '/'")
        return f"{project}/{queue or '*'}"

    @property
    def project_glob(self) -> str | None:
        """The glob the job's project must match (None: every project)."""
        if self.queue is None or "/" not in self.queue:
            return None
        return self.queue.partition("/")[0]

    @property
    def queue_glob(self) -> str | None:
        """The glob the job's queue must match (None: every queue)."""
        if self.queue is None or "/" not in self.queue:
            return self.queue
        return self.queue.partition("/")[2]

    def is_active(self, now: datetime) -> bool:
        """True while the silence is in force."""
        return self.starts_at <= now < self.ends_at

    def covers(self, job_name: str, queue: str, project: str = DEFAULT_PROJECT) -> bool:
        """True when the job name, queue and project fall under the silence (ignores time)."""
        project_glob, queue_glob = self.project_glob, self.queue_glob
        if project_glob is not None and not fnmatchcase(project, project_glob):
            return False
        if queue_glob is not None and not fnmatchcase(queue, queue_glob):
            return False
        return self._pattern.fullmatch(job_name) is not None

    def matches(self, event: Event, now: datetime) -> bool:
        """True when the silence is active at `now` and covers the event's job."""
        return self.is_active(now) and self.covers(event.job.name, event.queue, event.project)
