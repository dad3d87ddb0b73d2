"""A burst of 500 failures meets vendors that count in sliding windows, on one fake clock.

The dispatcher runs over a real SQLite file and real webhook sinks posting over real sockets
to two strict fakes: a DingTalk-like robot that answers `errcode 130101` as soon as more than
20 messages arrive within any 60 s, and a Slack-like one that answers 429 to a second message
within 1 s. Both read the same fake clock as the monitor, so "any window" is exact. A new
`Store` + `Dispatcher` over the same file is a process restart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.dispatch import DeliveryPolicy, Dispatcher
from monitor.models import Event, EventKind, Job, JobState, event_id_for
from monitor.ratelimit import RateBudget, budget_for
from monitor.sinks import DEFAULT_RATE_LIMITS, Sink, WebhookSink
from monitor.store import Store, open_store
from tests.conftest import FakeClock

BURST = 500


class WindowedVendor:
    """A chat robot that throttles when more than `limit` messages arrive within `window_s`."""

    def __init__(self, clock: FakeClock, *, limit: int, window_s: float, throttle: web.Response):
        self._clock = clock
        self._limit = limit
        self._window = timedelta(seconds=window_s)
        self._throttle_body = throttle.text or ""
        self._throttle_status = throttle.status
        self.arrivals: list[datetime] = []
        self.accepted: list[Any] = []
        self.throttled = 0
        self._server: TestServer | None = None

    async def __aenter__(self) -> WindowedVendor:
        app = web.Application()
        app.router.add_post("/robot", self._handle)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            await self._server.close()

    @property
    def url(self) -> str:
        """Where to post."""
        assert self._server is not None
        return str(self._server.make_url("/robot"))

    def most_in_any_window(self) -> int:
        """The most arrivals within any closed window of the vendor's length."""
        return max(
            (sum(1 for u in self.arrivals if t <= u <= t + self._window) for t in self.arrivals),
            default=0,
        )

    async def _handle(self, request: web.Request) -> web.Response:
        now = self._clock()
        self.arrivals.append(now)
        recent = sum(1 for at in self.arrivals if at >= now - self._window)
        if recent > self._limit:
            self.throttled += 1
            return web.Response(
                status=self._throttle_status,
                text=self._throttle_body,
                content_type="application/json",
            )
        self.accepted.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})


def dingtalk_like(clock: FakeClock) -> WindowedVendor:
    """20 a minute, then errcode 130101 inside an HTTP 200, as DingTalk does."""
    body = '{"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}'
    return WindowedVendor(clock, limit=20, window_s=60, throttle=web.Response(text=body))


def slack_like(clock: FakeClock) -> WindowedVendor:
    """1 a second, then 429 like Slack."""
    return WindowedVendor(
        clock, limit=1, window_s=1, throttle=web.Response(status=429, text='"rate_limited"')
    )


def dead_event(n: int, at: datetime) -> Event:
    job = Job(id=f"job-{n:04d}", state=JobState.DEAD, queue=f"q{n % 7}", name=f"etl_{n}")
    kind = EventKind.TRANSITION
    return Event(
        event_id=event_id_for("etl", job.id, kind, JobState.RUNNING, JobState.DEAD, at),
        kind=kind,
        target="etl",
        job=job,
        from_state=JobState.RUNNING,
        to_state=JobState.DEAD,
        observed_at=at,
    )


def listed(vendor: WindowedVendor) -> Counter[str]:
    """How often each event id appears across every message the vendor accepted."""
    ids: Counter[str] = Counter()
    for payload in vendor.accepted:
        events = payload["events"] if payload.get("kind") == "digest" else [payload]
        ids.update(e["event_id"] for e in events)
    return ids


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def ding(clock: FakeClock) -> AsyncIterator[WindowedVendor]:
    async with dingtalk_like(clock) as vendor:
        yield vendor


@pytest.fixture
async def slack(clock: FakeClock) -> AsyncIterator[WindowedVendor]:
    async with slack_like(clock) as vendor:
        yield vendor


def sinks_for(
    session: aiohttp.ClientSession, ding: WindowedVendor, slack: WindowedVendor
) -> dict[str, Sink]:
    return {
        "ding": WebhookSink("ding", ding.url, session=session, project_id="p"),
        "slack": WebhookSink("slack", slack.url, session=session, project_id="p"),
    }


def budgets_for(clock: FakeClock) -> dict[str, RateBudget]:
    """The production defaults of each vendor's sink type."""
    return {
        "ding": budget_for(*DEFAULT_RATE_LIMITS["dingtalk"], clock),
        "slack": budget_for(*DEFAULT_RATE_LIMITS["slack"], clock),
    }


async def burst(store: Store, clock: FakeClock, first: int, count: int) -> list[Event]:
    events = [dead_event(n, clock()) for n in range(first, first + count)]
    await store.commit_poll(
        "etl", upserts=(), removals=(), events=events, sinks=("ding", "slack"), now=clock()
    )
    return events


async def drain_until_empty(dispatcher: Dispatcher, store: Store, clock: FakeClock) -> int:
    """Drain, jump the clock to the next due row, repeat; returns how many drains it took."""
    drains = 0
    while await store.pending_by_sink():
        due = await store.next_due_at()
        assert due is not None
        clock.now = max(clock.now, due)
        await dispatcher.drain()
        drains += 1
        assert drains < 200, "the outbox does not drain"
    return drains


@pytest.mark.parametrize("digest_limit", [1000, 20])
async def test_a_burst_of_500_failures_reaches_both_vendors_within_their_windows(
    tmp_path: Path,
    clock: FakeClock,
    session: aiohttp.ClientSession,
    ding: WindowedVendor,
    slack: WindowedVendor,
    digest_limit: int,
) -> None:
    store = await open_store(tmp_path / "state.db")
    try:
        events = await burst(store, clock, 0, BURST)
        dispatcher = Dispatcher(
            store,
            sinks_for(session, ding, slack),
            policy=DeliveryPolicy(digest_limit=digest_limit),
            clock=clock,
            budgets=budgets_for(clock),
        )
        await drain_until_empty(dispatcher, store, clock)
    finally:
        await store.close()
    expected = Counter(e.event_id for e in events)
    for vendor in (ding, slack):
        assert vendor.throttled == 0
        assert listed(vendor) == expected  # every event exactly once
        assert 1 <= len(vendor.arrivals) <= BURST // 10  # digests, not a flood
    assert ding.most_in_any_window() <= 20
    assert slack.most_in_any_window() <= 1


async def test_the_budget_survives_a_restart_over_the_same_state_file(
    tmp_path: Path,
    clock: FakeClock,
    session: aiohttp.ClientSession,
    ding: WindowedVendor,
    slack: WindowedVendor,
) -> None:
    path = tmp_path / "state.db"
    policy = DeliveryPolicy(digest_limit=20)
    store = await open_store(path)
    events = await burst(store, clock, 0, BURST)
    first = Dispatcher(
        store,
        sinks_for(session, ding, slack),
        policy=policy,
        clock=clock,
        budgets=budgets_for(clock),
    )
    await first.drain()
    await store.close()
    sent_before = len(ding.arrivals)
    assert sent_before == 18  # the whole per-minute budget, then the rest held back

    clock.advance(20)  # restart: a new process, fresh in-memory budgets
    store = await open_store(path)
    try:
        events += await burst(store, clock, BURST, 5)  # and new failures arrive meanwhile
        restarted = Dispatcher(
            store,
            sinks_for(session, ding, slack),
            policy=policy,
            clock=clock,
            budgets=budgets_for(clock),
        )
        await restarted.drain()
        assert len(ding.arrivals) == sent_before  # nothing early, not even the new events
        await drain_until_empty(restarted, store, clock)
    finally:
        await store.close()
    expected = Counter(e.event_id for e in events)
    for vendor in (ding, slack):
        assert vendor.throttled == 0
        assert listed(vendor) == expected
    assert ding.most_in_any_window() <= 20
    assert slack.most_in_any_window() <= 1
