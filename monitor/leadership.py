"""Leadership in the daemon: which replica polls and delivers, and what the others do meanwhile.

With `state.url` (PostgreSQL) every replica runs a `LeaseKeeper` (`monitor.leader`) on one
lease (`dli-monitor`; with shards, one per shard in the shard's own schema, as
`monitor.shard_state` names them). `Leadership` ties it to the rest:

- it is the store's fence provider, so every snapshot commit and outbox claim or mark checks
  the lease inside its own transaction;
- `run` guards the leader-only jobs (poll cycles, outbox drains, alert refreshes): a standby
  returns at once, touching neither DLI nor the store's writes. When a new term starts (a
  fencing token this process has not run under) the memory of the job, and of the parts
  registered with `attach` (the dispatcher), is dropped first, so the job reloads snapshots,
  poll marks, rule memory and send times from the store that another leader kept meanwhile.
  Each run is pinned to the term it started in: if the term ends, its writes are refused;
- a `StoreFencedOff` out of a job means "no longer the leader": no crash, no event, one log
  line per term;
- `dli_monitor_leader` (1/0) and `dli_monitor_leader_changes_total{reason}`, kept by
  `monitor.leadership_changes`; the keeper itself logs every change with its reason, so nothing
  here logs it again;
- `role_view`, `settled`: what /readyz shows and needs (`monitor.leadership_probes`).

Without `state.url` (SQLite) there is no lease: the process always leads and `run` only calls
the job, as before. What does not live here: the lease SQL and its loop (`monitor.leader`),
the fence check (`monitor.store.postgres`), the metrics of changes
(`monitor.leadership_changes`), the HTTP endpoints (`monitor.server`).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import TypeVar

import asyncpg
import structlog
from prometheus_client import CollectorRegistry

from monitor.config import StateSettings
from monitor.health import Health
from monitor.leader import Fence, FencedOff, LeaseKeeper, make_holder_id
from monitor.leadership_changes import LeadershipChanges
from monitor.models import QueueResult
from monitor.shard_state import LEASE_NAME
from monitor.store import StoreFencedOff
from monitor.store.postgres import ensure_namespace, schema_settings

log = structlog.get_logger(__name__)

T = TypeVar("T")

LEADER, STANDBY = "leader", "standby"
STANDBY_REASON = "standby"
"""The `QueueResult.reason` of a target a standby did not poll."""

Forget = Callable[[], Awaitable[None] | None]
"""Drops some memory so that it is reloaded from the store; may be a coroutine function."""

_PINNED: ContextVar[Fence | None] = ContextVar("dli_monitor_term_fence", default=None)
"""The fence of the term the current guarded run started in (None outside guarded runs)."""


def _taken_over(exc: StoreFencedOff, fence: Fence) -> bool:
    """True when the refusal says another holder or token has the lease now."""
    cause = exc.__cause__
    if not isinstance(cause, FencedOff):
        return False
    return (cause.current_holder, cause.current_token) != (fence.holder, fence.token)


class Leadership:
    """Whether this replica leads, the guard of its leader-only jobs, and what it exports."""

    def __init__(
        self,
        keeper: LeaseKeeper | None,
        registry: CollectorRegistry,
        health: Health,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`keeper` None: no lease (SQLite), this process always leads."""
        self._keeper = keeper
        self._health = health
        self._shared: list[Forget] = []
        self._term: Fence | None = None
        """The term the last guarded run started in."""
        self._job_terms: dict[str, Fence] = {}
        self._cycled = False
        """A cycle completed in `_term`."""
        self._dead: Fence | None = None
        """A fence the store refused because another holder took over (the keeper will see)."""
        self._fenced_term: Fence | None = None
        self._changes = LeadershipChanges(registry, lambda: self.leading, clock)
        if keeper is not None:
            keeper.on_change(self._changes.keeper_changed)

    @classmethod
    def from_settings(
        cls,
        state: StateSettings,
        registry: CollectorRegistry,
        health: Health,
        *,
        name: str = LEASE_NAME,
        holder: str | None = None,
        schema: str | None = None,
    ) -> Leadership:
        """A keeper on `state.url` (same password) with `state.lease_ttl`; none for SQLite.

        `name` is the lease row's; `schema` the PostgreSQL schema its `lease` table lives in,
        which must be the store's (the store's fence check reads the row through its own
        `search_path`). None: the server's default, as the store's.
        """
        if state.url is None:
            return cls(None, registry, health)
        connect = _lease_connect(state, schema)
        keeper = LeaseKeeper(connect, name, holder or make_holder_id(), state.lease_ttl)
        return cls(keeper, registry, health)

    @property
    def keeper(self) -> LeaseKeeper | None:
        """The lease keeper (None without a lease)."""
        return self._keeper

    @property
    def holder(self) -> str | None:
        """This replica's holder id in the lease row (None without a lease)."""
        return None if self._keeper is None else self._keeper.holder

    @property
    def leading(self) -> bool:
        """True while this replica leads (always without a lease)."""
        return self._keeper is None or self._current() is not None

    @property
    def fence_provider(self) -> Callable[[], Fence | None] | None:
        """What the store checks its leader-only writes against (None: not fenced)."""
        return None if self._keeper is None else self.fence

    @property
    def send_gate(self) -> Callable[[], bool] | None:
        """What the dispatcher asks before every send (None: always send)."""
        return None if self._keeper is None else lambda: self.fence() is not None

    @property
    def idle_limit_s(self) -> float | None:
        """How long the server lets one of our transactions sit idle (None: no limit): at most
        the TTL, so a frozen leader's open transaction cannot hold a takeover back longer."""
        return None if self._keeper is None else self._keeper.ttl_s

    def fence(self) -> Fence | None:
        """The fence of the current term, None when not leading or when the guarded run
        asking started in an earlier term."""
        current = self._current()
        pinned = _PINNED.get()
        if current is None or (pinned is not None and pinned != current):
            return None
        return current

    def _current(self) -> Fence | None:
        if self._keeper is None:
            return None
        fence = self._keeper.fence
        return None if fence is None or fence == self._dead else fence

    def attach(self, forget: Forget) -> None:
        """Drop this memory too whenever a new term starts (once, by the first guarded run)."""
        self._shared.append(forget)

    def start(self) -> None:
        """Start keeping the lease (a no-op without one)."""
        if self._keeper is not None:
            self._keeper.start()

    async def stop(self) -> None:
        """Step down and release the lease, so a standby takes over at once."""
        if self._keeper is not None:
            await self._keeper.stop()

    async def wait_leading(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds to lead; True when this replica leads."""
        if self._keeper is None:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._keeper.wait_leader()
        except TimeoutError:
            return False
        return True

    async def run(
        self,
        name: str,
        job: Callable[[], Awaitable[T]],
        *,
        forget: Forget | None = None,
        cycle: bool = False,
    ) -> T | None:
        """Run a leader-only job, or return None at once on a standby (or when it was fenced).

        `name` keys the job's term; `forget` drops the job's memory when the term is new;
        `cycle` marks a poll cycle (the first complete one makes the leader ready).
        """
        if self._keeper is None:
            return await job()
        fence = await self._enter(name, forget)
        if fence is None:
            return None
        pinned = _PINNED.set(fence)
        try:
            result = await job()
        except StoreFencedOff as exc:
            self._fenced(name, fence, exc)
            return None
        finally:
            _PINNED.reset(pinned)
        if cycle and self._term == fence:
            self._cycled = True
        return result

    def guard(
        self,
        name: str,
        job: Callable[[], Awaitable[object]],
        *,
        forget: Forget | None = None,
        cycle: bool = False,
    ) -> Callable[[], Awaitable[None]]:
        """`run` as a scheduler job function (its result is dropped)."""

        async def guarded() -> None:
            await self.run(name, job, forget=forget, cycle=cycle)

        return guarded

    def standby_results(self, targets: Iterable[str]) -> tuple[QueueResult, ...]:
        """What a standby reports for targets it did not poll (for `once`)."""
        error = "not polled: another replica holds the leader lease"
        return tuple(QueueResult(t, ok=False, error=error, reason=STANDBY_REASON) for t in targets)

    async def _enter(self, name: str, forget: Forget | None) -> Fence | None:
        """The fence to run under, after dropping memory a new term makes stale; None on a
        standby."""
        fence = self.fence()
        if fence is None:
            return None
        if fence != self._term:
            self._term, self._cycled = fence, False
            self._health.record_write(error=None)  # an old term's write failure is not ours
            log.debug("term begins: memory reloads from the store", token=fence.token)
            for shared in self._shared:
                await _call(shared)
        if self._job_terms.get(name) != fence:
            self._job_terms[name] = fence
            if forget is not None:
                await _call(forget)
        return fence

    def _fenced(self, name: str, fence: Fence, exc: StoreFencedOff) -> None:
        """A write was refused: this replica no longer leads in `fence`'s term. Log it once."""
        if self._fenced_term == fence:
            return
        self._fenced_term = fence
        keeper = self._keeper
        if keeper is not None and keeper.fence == fence and _taken_over(exc, fence):
            self._dead = fence  # the keeper has not seen it yet; stop acting now
            self._changes.fenced_off()
            log.warning("leadership lost: a write was fenced off", job=name, detail=str(exc))
            return
        log.info(
            "leader-only work stopped: this replica no longer leads",
            job=name,
            token=fence.token,
            detail=str(exc),
        )

    def role_view(self) -> dict[str, object]:
        """This replica's role for /readyz and /api/status."""
        view: dict[str, object] = {"role": LEADER if self.leading else STANDBY}
        if self._keeper is not None:
            view["instance"] = self._keeper.holder
            view["lease"] = self._keeper.name
            view["database_reachable"] = self._keeper.reachable
        return view

    @property
    def settled(self) -> bool:
        """True once a cycle completed in the current term (a leader's readiness)."""
        current = self._current()
        return current is not None and self._cycled and self._term == current

    @property
    def leading_for_s(self) -> float:
        """Seconds since this replica last became the leader."""
        return self._changes.leading_for_s


def _lease_connect(
    state: StateSettings, schema: str | None
) -> Callable[[], Awaitable[asyncpg.Connection]]:
    """How the keeper opens its connection: to `state.url`, placed in `schema` (created if
    missing, so the keeper never depends on the store having opened first)."""
    url, password, ttl = state.url, state.password_value(), state.lease_ttl
    settings = {"application_name": "dli-monitor lease", **schema_settings(schema)}

    async def connect() -> asyncpg.Connection:
        conn = await asyncpg.connect(url, password=password, timeout=ttl, server_settings=settings)
        try:
            await ensure_namespace(conn, schema)
        except BaseException:
            conn.terminate()
            raise
        return conn

    return connect


async def _call(forget: Forget) -> None:
    """Call `forget`, awaiting it when it is a coroutine function."""
    result = forget()
    if inspect.isawaitable(result):
        await result
