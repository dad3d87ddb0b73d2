"""The simulator's in-memory DLI project: the `World` of batch jobs, the request log, the faults.

A `World` is plain mutable state that tests (and the scenario driver) change between requests:
add a job, move it to another state, hide it from the listing, remove it. It knows nothing of
HTTP; `server` turns requests into calls on it, and `faults` holds the misbehaviour plan.

Listed jobs are also kept in sorted indexes (`listing_index`), so `World.page` serves one page
in about the same time at 1,000 jobs as at 100,000. Two knobs play DLI's documented
ambiguities: `total_mode` (does `total` count every matching job or just the page?) and
`list_order` (is the order what was asked for?). The job and request records themselves are
in `records`.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import Literal

from monitor.models import Clock, utc_now
from monitor.simulator.faults import Faults
from monitor.simulator.listing_index import ListingIndex, ListingKey, normalised_state
from monitor.simulator.records import RecordedRequest, SimJob, create_request_body, epoch_ms

TotalMode = Literal["all", "page"]
"""What a list answer's `total` counts: every matching job (Livy's meaning) or the page's rows."""

ListOrder = Literal["newest_first", "oldest_first", "shuffled"]
"""How the server honours the requested order: as asked, reversed, or each page shuffled."""


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
        self._keys: dict[str, ListingKey] = {}
        self._index = ListingIndex()

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
            req_body=create_request_body(name, queue),
        )
        if normalised_state(state) != "starting":
            job.app_id = self._next_app_id(create_ms)
        self.jobs[job_id] = job
        self._added += 1
        self._keys[job_id] = (create_ms, self._added, job_id)
        self._index.add(self._keys[job_id], queue, normalised_state(state))
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
        if job.app_id is None and normalised_state(state) != "starting":
            job.app_id = self._next_app_id(job.create_ms)
        job.add_log(log_line if log_line is not None else f"stdout: state changed to {state}")
        if job_id not in self._hidden:
            self._index.discard(job_id)
            self._index.add(self._keys[job_id], job.queue, normalised_state(state))

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
        self._index.add(self._keys[job_id], job.queue, normalised_state(job.state))

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
    ) -> list[ListingKey]:
        """The sorted keys (oldest first) of the listed jobs matching every given filter.

        Returns an index's own list when only indexed filters are given: do not mutate it.
        """
        if queue_name is not None and cluster_name is not None and queue_name != cluster_name:
            return []
        queue = queue_name if queue_name is not None else cluster_name
        wanted_state = normalised_state(state) if state else None
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
