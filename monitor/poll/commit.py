"""Turning one target's observation into events and one committed transaction.

`Committer.commit` diffs an `Observation` against what is known of the target, runs the
lifecycle rules, and writes snapshot rows, events, outbox rows (with each event's routing
decision), rule state, the poll mark and the sightings (each job seen new or in a new state,
for `dli-monitor explain`) in one store transaction; then it updates the in-memory snapshot and
the metrics.

Targets are named by queue (or `*`) here, as the poller names them; the store, the differ's
event ids and the job metrics see the project's store key of the target (`ProjectRef.key`:
the bare queue for the single form, `<project>/<queue>` for a listed project), and every event
is stamped with its project and region before it is committed.

What is known of a target: the in-memory snapshot, plus the stored records of any job the
observation shows that memory does not hold. In incremental mode memory keeps only active jobs
and those that ended within `keep_ended_s` (without their log lines); history stays in the
store and is looked up when a listing shows it again, so an old job is never news twice.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

import structlog

from monitor.config.rules import RulesSettings
from monitor.diff import Baseline, DiffResult, diff
from monitor.metrics import Metrics
from monitor.models import Event, EventKind, HistoryUpdate, Job, PollMark, ProjectRef, QueueResult
from monitor.models_explain import Sighting
from monitor.poll.observation import Observation
from monitor.routing import Router, RoutingPass
from monitor.rules import evaluate
from monitor.store import Store

log = structlog.get_logger(__name__)


class Committer:
    """Owns the in-memory snapshots and poll marks, and commits observations."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        router: Router,
        *,
        baseline: Baseline,
        rules: RulesSettings,
        keep_ended_s: float | None,
        project: ProjectRef | None = None,
    ) -> None:
        """`keep_ended_s` None keeps every job in memory (full mode); `project` is the DLI
        project the targets belong to (default: the single form's)."""
        self._project = project or ProjectRef()
        self._store = store
        self._metrics = metrics
        self._router = router
        self._baseline = baseline
        self._rules = rules
        self._keep_ended_s = keep_ended_s
        self._snapshots: dict[str, dict[str, Job] | None] = {}
        self._marks: dict[str, PollMark | None] = {}
        self._history: dict[str, Counter[tuple[str, str]]] = {}
        """Incremental mode: stored jobs per (queue, state) that memory does not hold."""
        self._unknown_logged: set[str] = set()

    async def snapshot(self, target: str, now: datetime) -> dict[str, Job] | None:
        """What memory holds of a target (loaded from the store on first use)."""
        if target not in self._snapshots:
            since = None if self._keep_ended_s is None else now - self._ended_window
            key = self._project.key(target)
            state = await self._store.load_target(key, ended_since=since)
            self._snapshots[target] = dict(state.jobs) if state is not None else None
            if since is not None and state is not None:
                history = Counter(await self._store.count_jobs(key))
                history.subtract(_tally(state.jobs.values()))
                self._history[target] = +history
        return self._snapshots[target]

    async def mark(self, target: str) -> PollMark | None:
        """Where incremental polling of a target stands (loaded on first use)."""
        if target not in self._marks:
            self._marks[target] = await self._store.poll_mark(self._project.key(target))
        return self._marks[target]

    def forget(self) -> None:
        """Drop the snapshots, marks and counted history held in memory (reloaded on use)."""
        self._snapshots.clear()
        self._marks.clear()
        self._history.clear()

    @property
    def _ended_window(self) -> timedelta:
        return timedelta(seconds=self._keep_ended_s or 0.0)

    async def commit(
        self, target: str, observation: Observation, now: datetime, *, cycle_id: str = ""
    ) -> QueueResult:
        """Diff, evaluate the rules and commit one target's observation; returns its result
        (`cycle_id`, the cycle's as its log lines show it, goes with the sightings kept)."""
        self._note(target, observation)
        key = self._project.key(target)
        previous = await self.snapshot(target, now)
        known, stored = await self._known(key, previous, observation)
        mark = observation.mark
        floor = mark.baseline_floor if mark is not None else None
        result = diff(
            known,
            observation.sightings,
            target=key,
            now=now,
            confirmed=observation.confirmed,
            baseline=self._baseline,
            complete=observation.complete,
            baseline_before=floor,
        )
        events, history = await self._apply_rules(key, result, now, baseline=previous is None)
        routing = await self._router.for_commit(now)
        inserted = await self._store.commit_poll(
            key,
            upserts=result.upserts,
            removals=result.removals,
            events=events,
            now=now,
            routing=routing,
            history=history,
            mark=mark,
            sightings=_sightings(key, known, result.upserts, now, cycle_id, floor=floor),
            cycle_id=cycle_id,
        )
        kept = self._remember(target, result.snapshot, stored, mark, now)
        self._count(target, inserted, observation, routing)
        if previous is None:
            log.info("baseline recorded", jobs=len(result.snapshot))
        return QueueResult(
            target=key,
            ok=True,
            jobs=len(kept),
            events=len(inserted),
            baseline=previous is None,
        )

    async def _known(
        self, key: str, previous: dict[str, Job] | None, observation: Observation
    ) -> tuple[dict[str, Job] | None, dict[str, Job]]:
        """What is known of the target (memory, plus the stored records of jobs the
        observation shows that memory does not hold), and those stored records alone."""
        if previous is None:
            return None, {}
        unknown = [job_id for job_id in observation.sightings if job_id not in previous]
        stored = await self._store.lookup_jobs(key, unknown) if unknown else {}
        return ({**previous, **stored} if stored else previous), stored

    async def _apply_rules(
        self, key: str, result: DiffResult, now: datetime, *, baseline: bool
    ) -> tuple[tuple[Event, ...], HistoryUpdate | None]:
        """The diff's events with the lifecycle rules' added (none on a silent baseline), each
        stamped with its project, and the rule memory to write with them."""
        events, history = result.events, None
        if not baseline:  # the baseline stays silent, rules included
            memory = await self._store.load_rule_memory(key)
            outcome = evaluate(
                result.snapshot, events, memory, target=key, now=now, settings=self._rules
            )
            events, history = outcome.events, outcome.update
        return tuple(self._stamp(event) for event in events), history

    def _remember(
        self,
        target: str,
        snapshot: dict[str, Job],
        stored: dict[str, Job],
        mark: PollMark | None,
        now: datetime,
    ) -> dict[str, Job]:
        """After the commit: update memory (snapshot, mark, counted history) and the job
        metrics; returns what memory keeps of the target."""
        self._marks[target] = mark if mark is not None else self._marks.get(target)
        kept = self._keep(snapshot, now)
        self._snapshots[target] = kept
        counted = self._rehome(target, snapshot, kept, stored)
        key = self._project.key(target)
        self._metrics.set_snapshot(key, kept.values(), counted, project=self._project)
        return kept

    def _stamp(self, event: Event) -> Event:
        """The event with the project (and region) it belongs to."""
        project = self._project
        if event.project == project.name and event.region == project.region:
            return event
        return dataclasses.replace(event, project=project.name, region=project.region)

    def _keep(self, snapshot: dict[str, Job], now: datetime) -> dict[str, Job]:
        """What memory keeps: all (full mode), or active and recently ended jobs, compacted."""
        if self._keep_ended_s is None:
            return snapshot
        since = now - self._ended_window
        kept: dict[str, Job] = {}
        for job_id, job in snapshot.items():
            if not job.state.is_terminal:
                kept[job_id] = job
            elif job.state_since is not None and job.state_since >= since:
                kept[job_id] = dataclasses.replace(job, log_tail=()) if job.log_tail else job
        return kept

    def _rehome(
        self,
        target: str,
        snapshot: dict[str, Job],
        kept: dict[str, Job],
        stored: dict[str, Job],
    ) -> Counter[tuple[str, str]] | None:
        """Move jobs between memory and the counted history; the history after the move.

        The jobs looked up in the store leave the history (counted with their old state), and
        whatever the new snapshot holds that memory does not keep joins it.
        """
        if self._keep_ended_s is None:
            return None
        history = self._history.setdefault(target, Counter())
        history.subtract(_tally(stored.values()))
        history.update(_tally(job for job_id, job in snapshot.items() if job_id not in kept))
        self._history[target] = +history
        return self._history[target]

    def _note(self, target: str, observation: Observation) -> None:
        """Count and log (once per raw value) what the API sent that we could not use."""
        self._metrics.observe_pages(target, observation.pages, project=self._project)
        if observation.malformed:
            self._metrics.observe_malformed(target, observation.malformed, project=self._project)
            log.warning("malformed job records skipped", count=observation.malformed)
        for raw in sorted(observation.unknown_states - self._unknown_logged):
            self._unknown_logged.add(raw)
            log.warning("unknown job state; treated as unknown", raw_state=raw)

    def _count(
        self, target: str, inserted: list[Event], observation: Observation, routing: RoutingPass
    ) -> None:
        project = self._project
        for event in inserted:
            self._count_event(target, event)
            if event.job.id in observation.reconciled:
                self._metrics.poll.observe_discrepancy(event.queue, project=project)
                log.warning(
                    "reconciliation found a change incremental polling missed",
                    job_id=event.job.id,
                    kind=event.kind.value,
                    to_state=event.to_state.value if event.to_state else None,
                )
        for event, silence in routing.silenced:
            self._metrics.observe_muted(event.queue, "silenced", project=project)
            log.info("event silenced", job_name=event.job.name, silence=silence.id)
        for event in routing.unrouted:
            self._metrics.observe_muted(event.queue, "unrouted", project=project)

    def _count_event(self, target: str, event: Event) -> None:
        if event.kind.is_rule:  # not a state change: no transition, no finished job
            return
        if event.to_state is not None and event.to_state.is_terminal:
            self._metrics.observe_finished(event.job, target, project=self._project)
        from_state = event.from_state.value if event.from_state else "none"
        to_state = event.to_state.value if event.to_state else "vanished"
        if event.kind is EventKind.APPEARED:
            from_state = "none"
        self._metrics.record_transition(event.queue, from_state, to_state, project=self._project)


def _sightings(
    key: str,
    known: dict[str, Job] | None,
    upserts: Iterable[Job],
    now: datetime,
    cycle_id: str,
    *,
    floor: datetime | None,
) -> tuple[Sighting, ...]:
    """A sighting per job seen new or in a new state; baseline ones (the target's first poll,
    or a job that predates an incremental baseline) are flagged so."""
    found: list[Sighting] = []
    for job in upserts:
        before = known.get(job.id) if known is not None else None
        if before is not None and before.state is job.state:
            continue
        predates = floor is not None and job.create_time is not None and job.create_time <= floor
        found.append(
            Sighting(
                target=key,
                job_id=job.id,
                state=job.state,
                seen_at=now,
                job_name=job.name,
                queue=job.queue,
                cycle_id=cycle_id,
                baseline=known is None or (before is None and predates),
            )
        )
    return tuple(found)


def _tally(jobs: Iterable[Job]) -> Counter[tuple[str, str]]:
    """Jobs per (queue, state)."""
    return Counter((job.queue, job.state.value) for job in jobs)
