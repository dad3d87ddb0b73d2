"""The simulator's in-memory DLI project: batch jobs, the request log and the fault plan.

A `World` is plain mutable state that tests (and the scenario driver) change between requests:
add a job, move it to another state, hide it from the listing, remove it. It knows nothing of
HTTP; `server` turns requests into calls on it, and `faults` holds the misbehaviour plan.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from monitor.models import Clock, utc_now
from monitor.simulator.faults import Faults

LOG_KEEP = 10
"""How many log lines a job keeps: DLI returns the last 10 in every batch object."""

FINAL_STATES = frozenset({"success", "dead", "killed", "error"})
"""Raw states (compared lower-cased) after which a job never changes again."""

FAKE_SECRET = "SIMULATED-SECRET"
"""The fake credential every job's `req_body` carries, so redaction can be tested."""


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, the unit of every DLI timestamp."""
    return int(moment.timestamp() * 1000)


@dataclass
class SimJob:
    """One Spark batch job as the simulator stores it; `state` is raw (any case, any value)."""

    id: str
    name: str
    queue: str
    owner: str
    state: str
    create_ms: int
    update_ms: int
    app_id: str | None = None
    sc_type: str = "A"
    log: list[str] = field(default_factory=list)
    duration_ms: int = 0
    req_body: str = ""

    @property
    def is_final(self) -> bool:
        """True when the raw state is a terminal one (case-insensitive)."""
        return self.state.strip().lower() in FINAL_STATES

    def add_log(self, line: str) -> None:
        """Append one log line, keeping only the last `LOG_KEEP`."""
        self.log.append(line)
        del self.log[:-LOG_KEEP]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the simulator answered, for tests that count calls."""

    method: str
    path: str
    query: dict[str, str]
    operation: str
    status: int


def _req_body(name: str, queue: str) -> str:
    """A realistic create-request JSON text, fake credential included."""
    return json.dumps(
        {
            "file": f"obs://sim-bucket/jars/{name}.jar",
            "className": "com.example.sim.Main",
            "name": name,
            "queue": queue,
            "sc_type": "A",
            "conf": {"spark.hadoop.fs.obs.secret.key": FAKE_SECRET},
            "args": [f"spark.hadoop.fs.obs.secret.key={FAKE_SECRET}"],
        }
    )


class World:
    """All jobs of one simulated project, plus the request log and the fault plan."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.jobs: dict[str, SimJob] = {}
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self.unknown_routes: list[RecordedRequest] = []
        self._hidden: set[str] = set()
        self._apps = 0

    def now_ms(self) -> int:
        """The simulator clock in epoch milliseconds."""
        return epoch_ms(self.clock())

    def add_job(
        self,
        *,
        queue: str,
        name: str,
        state: str = "starting",
        owner: str = "sim",
        job_id: str | None = None,
        created: datetime | None = None,
    ) -> SimJob:
        """Create a job (created now unless `created` is given) and return it."""
        job_id = job_id or str(uuid.uuid4())
        if job_id in self.jobs:
            raise ValueError(f"job {job_id} already exists")
        create_ms = epoch_ms(created) if created is not None else self.now_ms()
        job = SimJob(
            id=job_id,
            name=name,
            queue=queue,
            owner=owner,
            state=state,
            create_ms=create_ms,
            update_ms=create_ms,
            log=["stdout: ", "stderr: ", "YARN Diagnostics: "],
            req_body=_req_body(name, queue),
        )
        if state.strip().lower() != "starting":
            job.app_id = self._next_app_id(create_ms)
        self.jobs[job_id] = job
        return job

    def get(self, job_id: str) -> SimJob:
        """The job with this id, listed or hidden; raises KeyError when it does not exist."""
        return self.jobs[job_id]

    def set_state(
        self,
        job_id: str,
        state: str,
        *,
        log_line: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Move a job to `state`: bumps update_time (to `at`, default now) and logs a line."""
        job = self.jobs[job_id]
        update_ms = epoch_ms(at) if at is not None else self.now_ms()
        job.state = state
        job.update_ms = max(update_ms, job.create_ms)
        job.duration_ms = job.update_ms - job.create_ms
        if job.app_id is None and state.strip().lower() != "starting":
            job.app_id = self._next_app_id(job.create_ms)
        job.add_log(log_line if log_line is not None else f"stdout: state changed to {state}")

    def append_log(self, job_id: str, line: str) -> None:
        """Add one log line to a job without changing its state."""
        self.jobs[job_id].add_log(line)

    def remove_job(self, job_id: str) -> None:
        """Delete a job: gone from the listing and from every per-job endpoint."""
        del self.jobs[job_id]
        self._hidden.discard(job_id)

    def hide_from_listing(self, job_id: str) -> None:
        """Keep a job answering `/state` and details but leave it out of every listing."""
        if job_id not in self.jobs:
            raise KeyError(job_id)
        self._hidden.add(job_id)

    def unhide(self, job_id: str) -> None:
        """Show a hidden job in listings again."""
        self._hidden.discard(job_id)

    def is_hidden(self, job_id: str) -> bool:
        """True when the job is left out of listings."""
        return job_id in self._hidden

    def listing(
        self,
        *,
        queue_name: str | None = None,
        cluster_name: str | None = None,
        state: str | None = None,
        job_name: str | None = None,
        job_id: str | None = None,
        owner: str | None = None,
    ) -> list[SimJob]:
        """Listed jobs matching every given filter, newest `create_time` first.

        Filters are exact matches, except `state`, which ignores case. Jobs created in the same
        millisecond are ordered newest-added first, so a job added mid-paging shifts offsets.
        """
        wanted_state = state.strip().lower() if state else None
        matches = [
            job
            for job in reversed(self.jobs.values())
            if job.id not in self._hidden
            and (queue_name is None or job.queue == queue_name)
            and (cluster_name is None or job.queue == cluster_name)
            and (wanted_state is None or job.state.strip().lower() == wanted_state)
            and (job_name is None or job.name == job_name)
            and (job_id is None or job.id == job_id)
            and (owner is None or job.owner == owner)
        ]
        matches.sort(key=lambda job: job.create_ms, reverse=True)  # stable: ties keep order
        return matches

    def apply_drift(self, offset: int, queue: str | None) -> None:
        """Fire the armed paging-drift triggers due for a list request at `offset`."""
        for drift in self.faults.take_drift(offset, queue):
            if drift.insert is not None:
                self.add_job(**drift.insert)
            elif drift.remove_id is not None and drift.remove_id in self.jobs:
                self.remove_job(drift.remove_id)

    def record(self, request: RecordedRequest, *, unknown: bool = False) -> None:
        """Log one answered request (and, for unknown routes, note it separately)."""
        self.requests.append(request)
        if unknown:
            self.unknown_routes.append(request)

    def calls(self, operation: str) -> list[RecordedRequest]:
        """The recorded requests of one operation, oldest first."""
        return [r for r in self.requests if r.operation == operation]

    def _next_app_id(self, create_ms: int) -> str:
        """A YARN-style application id, unique within this world."""
        self._apps += 1
        return f"application_{create_ms // 1000}_{self._apps:04d}"
