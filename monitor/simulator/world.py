"""The simulator's in-memory DLI project: batch jobs, the request log and the fault plan.

A `World` is plain mutable state that tests (and the scenario driver) change between requests:
add a job, move it to another state, hide it from the listing, remove it. It knows nothing of
HTTP; `server` turns requests into calls on it, and `faults` holds the misbehaviour plan.

Listed jobs are also kept in sorted indexes (overall, per queue, per lower-cased state and per
queue and state), so `World.page` serves one page in about the same time at 1,000 jobs as at
100,000. Two knobs play DLI's documented ambiguities: `total_mode` (does `total` count every
matching job or just the page?) and `list_order` (is the order what was asked for?).
"""

from __future__ import annotations

import json
import random
import uuid
from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from monitor.models import Clock, utc_now
from monitor.simulator.faults import Faults

LOG_KEEP = 10
"""How many log lines a job keeps: DLI returns the last 10 in every batch object."""

FINAL_STATES = frozenset({"success", "dead", "killed", "error"})
"""Raw states (compared lower-cased) after which a job never changes again."""

FAKE_SECRET = "SIMULATED-SECRET"
"""The fake credential every job's `req_body` carries, so redaction can be tested."""

TotalMode = Literal["all", "page"]
"""What a list answer's `total` counts: every matching job (Livy's meaning) or the page's rows."""

ListOrder = Literal["newest_first", "oldest_first", "shuffled"]
"""How the server honours the requested order: as asked, reversed, or each page shuffled."""

_Key = tuple[int, int, str]
"""A listed job's sort key, (create ms, add sequence, id): ascending means oldest first."""


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


def _norm_state(state: str) -> str:
    """A raw state as the `state` filter compares it: stripped and lower-cased."""
    return state.strip().lower()


class _Index:
    """Sorted keys of the listed jobs: overall, per queue, per state and per (queue, state).

    Every list is ascending (oldest first), so jobs added in time order are appended at the end.
    """

    def __init__(self) -> None:
        self.all: list[_Key] = []
        self.by_queue: dict[str, list[_Key]] = {}
        self.by_state: dict[str, list[_Key]] = {}
        self.by_queue_state: dict[tuple[str, str], list[_Key]] = {}
        self.entries: dict[str, tuple[_Key, str, str]] = {}

    def add(self, key: _Key, queue: str, state: str) -> None:
        """Index one job under its queue and normalised state."""
        self.entries[key[2]] = (key, queue, state)
        for keys in self._lists(queue, state, create=True):
            insort(keys, key)

    def discard(self, job_id: str) -> None:
        """Drop a job from every index it is in (nothing happens when it is in none)."""
        entry = self.entries.pop(job_id, None)
        if entry is None:
            return
        key, queue, state = entry
        for keys in self._lists(queue, state, create=False):
            del keys[bisect_left(keys, key)]
        if not self.by_queue[queue]:
            del self.by_queue[queue]
        if not self.by_state[state]:
            del self.by_state[state]
        if not self.by_queue_state[queue, state]:
            del self.by_queue_state[queue, state]

    def lookup(self, queue: str | None, state: str | None) -> list[_Key]:
        """The sorted keys of the listed jobs in `queue` and `state` (None: any)."""
        if queue is not None and state is not None:
            return self.by_queue_state.get((queue, state), [])
        if queue is not None:
            return self.by_queue.get(queue, [])
        if state is not None:
            return self.by_state.get(state, [])
        return self.all

    def _lists(self, queue: str, state: str, *, create: bool) -> Iterable[list[_Key]]:
        if create:
            yield self.all
            yield self.by_queue.setdefault(queue, [])
            yield self.by_state.setdefault(state, [])
            yield self.by_queue_state.setdefault((queue, state), [])
        else:
            yield self.all
            yield self.by_queue[queue]
            yield self.by_state[state]
            yield self.by_queue_state[queue, state]


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
    """All jobs of one simulated project, plus the request log and the fault plan.

    `total_mode` and `list_order` (and `shuffle_seed` for "shuffled") change how list answers
    are served; tests set them directly. Change jobs only through the methods, never by
    assigning `SimJob.state`, so the listing indexes stay right.
    """

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.jobs: dict[str, SimJob] = {}
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self.unknown_routes: list[RecordedRequest] = []
        self.total_mode: TotalMode = "all"
        self.list_order: ListOrder = "newest_first"
        self.shuffle_seed = 0
        self._hidden: set[str] = set()
        self._apps = 0
        self._added = 0
        self._keys: dict[str, _Key] = {}
        self._index = _Index()

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
        if _norm_state(state) != "starting":
            job.app_id = self._next_app_id(create_ms)
        self.jobs[job_id] = job
        self._added += 1
        self._keys[job_id] = (create_ms, self._added, job_id)
        self._index.add(self._keys[job_id], queue, _norm_state(state))
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
        if job.app_id is None and _norm_state(state) != "starting":
            job.app_id = self._next_app_id(job.create_ms)
        job.add_log(log_line if log_line is not None else f"stdout: state changed to {state}")
        if job_id not in self._hidden:
            self._index.discard(job_id)
            self._index.add(self._keys[job_id], job.queue, _norm_state(state))

    def append_log(self, job_id: str, line: str) -> None:
        """Add one log line to a job without changing its state."""
        self.jobs[job_id].add_log(line)

    def remove_job(self, job_id: str) -> None:
        """Delete a job: gone from the listing and from every per-job endpoint."""
        del self.jobs[job_id]
        del self._keys[job_id]
        self._hidden.discard(job_id)
        self._index.discard(job_id)

    def hide_from_listing(self, job_id: str) -> None:
        """Keep a job answering `/state` and details but leave it out of every listing."""
        if job_id not in self.jobs:
            raise KeyError(job_id)
        self._hidden.add(job_id)
        self._index.discard(job_id)

    def unhide(self, job_id: str) -> None:
        """Show a hidden job in listings again."""
        if job_id not in self._hidden:
            return
        self._hidden.discard(job_id)
        job = self.jobs[job_id]
        self._index.add(self._keys[job_id], job.queue, _norm_state(job.state))

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
        This is the true order: the `list_order` knob does not apply here.
        """
        keys = self._matching(queue_name, cluster_name, state, job_name, job_id, owner)
        return [self.jobs[key[2]] for key in reversed(keys)]

    def page(
        self,
        *,
        offset: int,
        size: int,
        queue_name: str | None = None,
        cluster_name: str | None = None,
        state: str | None = None,
        job_name: str | None = None,
        job_id: str | None = None,
        owner: str | None = None,
        ascending: bool = False,
    ) -> tuple[list[SimJob], int]:
        """One page of `listing(...)` (oldest first if `ascending`) and the count of matches.

        The count is always every matching job; `total_mode` is for the server to apply. The
        page follows `list_order`: "oldest_first" serves the opposite of the requested order,
        "shuffled" the right rows in a deterministic (seeded) different order. Queue, cluster
        and state filters, alone or combined, cost O(log N + size); the others scan.
        """
        if offset < 0 or size < 0:
            raise ValueError(f"offset and size must be >= 0, got {offset} and {size}")
        keys = self._matching(queue_name, cluster_name, state, job_name, job_id, owner)
        if self.list_order == "oldest_first":
            ascending = not ascending
        total = len(keys)
        if ascending:
            rows = keys[offset : offset + size]
        else:
            end = total - offset
            rows = keys[max(0, end - size) : end][::-1] if end > 0 else []
        page = [self.jobs[key[2]] for key in rows]
        if self.list_order == "shuffled":
            page = self._shuffled(page, offset)
        return page, total

    def _matching(
        self,
        queue_name: str | None,
        cluster_name: str | None,
        state: str | None,
        job_name: str | None,
        job_id: str | None,
        owner: str | None,
    ) -> list[_Key]:
        """The sorted keys (oldest first) of the listed jobs matching every given filter.

        Returns an index's own list when only indexed filters are given: do not mutate it.
        """
        if queue_name is not None and cluster_name is not None and queue_name != cluster_name:
            return []
        queue = queue_name if queue_name is not None else cluster_name
        wanted_state = _norm_state(state) if state else None
        if job_id is not None:
            entry = self._index.entries.get(job_id)
            keys = [entry[0]] if entry is not None else []
            if entry is not None and (
                (queue is not None and entry[1] != queue)
                or (wanted_state is not None and entry[2] != wanted_state)
            ):
                keys = []
        else:
            keys = self._index.lookup(queue, wanted_state)
        if job_name is None and owner is None:
            return keys
        return [
            key
            for key in keys
            if (job_name is None or self.jobs[key[2]].name == job_name)
            and (owner is None or self.jobs[key[2]].owner == owner)
        ]

    def _shuffled(self, page: list[SimJob], offset: int) -> list[SimJob]:
        """The page's rows in a seeded order that differs from the given one (if it can)."""
        rows = list(page)
        random.Random(f"{self.shuffle_seed}:{offset}:{len(rows)}").shuffle(rows)
        if len(rows) > 1 and rows == page:
            rows = rows[1:] + rows[:1]
        return rows

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
