"""The dispatcher: outbox rows go to real webhook receivers, retried by a clock we control."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import aiohttp
import pytest
from structlog.testing import capture_logs

from monitor.dispatch import DeliveryPolicy, Dispatcher
from monitor.models import Event, EventKind, Job, JobState, Notification, event_id_for
from monitor.ratelimit import RateBudget, Window
from monitor.sinks import Sink, WebhookSink
from monitor.store import Store, StoreWriteError, open_store
from tests.fakes.receiver import Receiver, Reply

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
POLICY = DeliveryPolicy(backoff=(5, 30), max_age_s=3600, batch_size=100)


class ManualClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_event(n: int) -> Event:
    job = Job(id=f"job-{n:03d}", state=JobState.DEAD, queue="etl", name=f"n{n}")
    kind = EventKind.TRANSITION
    return Event(
        event_id=event_id_for("etl", job.id, kind, JobState.RUNNING, JobState.DEAD, T0),
        kind=kind,
        target="etl",
        job=job,
        from_state=JobState.RUNNING,
        to_state=JobState.DEAD,
        observed_at=T0,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    s = await open_store(":memory:")
    yield s
    await s.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture
async def chat() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


def webhook(name: str, receiver: Receiver, session: aiohttp.ClientSession) -> WebhookSink:
    return WebhookSink(name, receiver.url, session=session, project_id="p", timeout_s=2)


async def enqueue(
    store: Store, clock: ManualClock, events: list[Event], sinks: tuple[str, ...]
) -> None:
    await store.commit_poll("etl", upserts=(), removals=(), events=events, sinks=sinks, now=clock())


def dispatcher(
    store: Store,
    sinks: dict[str, Sink],
    clock: ManualClock,
    policy: DeliveryPolicy = POLICY,
    observed: list[tuple[str, str]] | None = None,
    budgets: dict[str, RateBudget] | None = None,
) -> Dispatcher:
    observer = None if observed is None else (lambda s, o: observed.append((s, o)))
    return Dispatcher(store, sinks, policy=policy, clock=clock, observer=observer, budgets=budgets)


async def test_a_due_event_is_delivered_once(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    event = make_event(1)
    await enqueue(store, clock, [event], ("hook",))
    d = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock)
    report = await d.drain()
    assert (report.delivered, report.failed, report.retrying) == (1, 0, 0)
    clock.advance(3600)
    assert (await d.drain()).delivered == 0
    assert hook.event_ids() == [event.event_id]
    assert await store.outcome(event.event_id, "hook") == ("delivered", 1, "")


async def test_a_500_is_retried_after_the_backoff_with_the_same_event_id(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    event = make_event(1)
    await enqueue(store, clock, [event], ("hook",))
    hook.script([500, 200])
    d = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock)
    assert (await d.drain()).retrying == 1
    assert await store.next_due_at() == T0 + timedelta(seconds=5)
    clock.advance(4)
    await d.drain()
    assert len(hook.received) == 1  # not due yet
    clock.advance(1)
    assert (await d.drain()).delivered == 1
    assert hook.event_ids() == [event.event_id, event.event_id]
    assert await store.outcome(event.event_id, "hook") == ("delivered", 2, "")


async def test_the_backoff_grows_with_each_failure_and_then_repeats_the_last_step(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    await enqueue(store, clock, [make_event(1)], ("hook",))
    hook.script([500, 500, 500])
    d = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock)
    waits = []
    for _ in range(3):
        await d.drain()
        due = await store.next_due_at()
        assert due is not None
        waits.append((due - clock()).total_seconds())
        clock.now = due
    assert waits == [5, 30, 30]


async def test_after_a_wall_clock_step_back_rows_waiting_out_a_backoff_are_due_at_once(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    event = make_event(1)
    await enqueue(store, clock, [event], ("hook",))
    hook.script([500])
    d = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock)
    await d.drain()  # the retry is planned 5 s after "now" on the clock of the time
    clock.advance(-90)  # NTP steps the clock back: that retry now lies 95 s ahead
    assert (await d.drain()).delivered == 0
    assert await d.after_clock_step() == 1
    assert (await d.drain()).delivered == 1
    assert await store.outcome(event.event_id, "hook") == ("delivered", 2, "")


class FullDisk:
    """The store, except that recording a delivery fails as on a full disk while `full`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.full = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def mark_delivered_many(self, *args: Any, **kwargs: Any) -> None:
        if self.full:
            raise StoreWriteError("state file: database or disk is full")
        await self._store.mark_delivered_many(*args, **kwargs)


async def test_a_delivery_the_full_disk_would_not_record_is_never_sent_again(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    event = make_event(1)
    await enqueue(store, clock, [event], ("hook",))
    disk = FullDisk(store)
    told: list[str] = []
    d = Dispatcher(
        cast(Store, disk),
        {"hook": webhook("hook", hook, session)},
        policy=POLICY,
        clock=clock,
        on_write_failure=told.append,
    )
    with capture_logs() as logs:
        assert (await d.drain()).delivered == 0  # sent, but the mark was refused
        clock.advance(60)
        await d.drain()  # still full: the unrecorded delivery is not sent again
    assert hook.event_ids() == [event.event_id]
    assert d.write_error is not None and len(told) == 2
    errors = [e["event"] for e in logs if e["log_level"] == "error"]
    assert errors == ["cannot record deliveries in the state file; sending waits until it can"]
    disk.full = False  # space returns
    await d.drain()
    assert hook.event_ids() == [event.event_id]  # recorded now, still sent once
    assert d.write_error is None
    assert (await store.outcome(event.event_id, "hook"))[0] == "delivered"


async def test_when_a_sink_recovers_the_rows_waiting_out_a_backoff_go_at_once(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    old = make_event(1)
    await enqueue(store, clock, [old], ("hook",))
    hook.script([500, 500])
    d = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock)
    await d.drain()
    clock.advance(5)
    await d.drain()  # second failure: the old row now waits 30 s
    assert await store.next_due_at() == clock() + timedelta(seconds=30)
    clock.advance(1)
    new = make_event(2)
    await enqueue(store, clock, [new], ("hook",))
    report = await d.drain()  # the new row's first attempt succeeds: the outage is over
    assert report.delivered == 2
    assert hook.event_ids() == [old.event_id, old.event_id, new.event_id, old.event_id]
    assert await store.outcome(old.event_id, "hook") == ("delivered", 3, "")


async def test_after_a_restart_the_first_success_brings_earlier_retries_forward(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    old = make_event(1)
    await enqueue(store, clock, [old], ("hook",))
    hook.script([500])
    await dispatcher(store, {"hook": webhook("hook", hook, session)}, clock).drain()
    clock.advance(1)
    await enqueue(store, clock, [make_event(2)], ("hook",))
    restarted = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock)
    assert (await restarted.drain()).delivered == 2
    assert await store.outcome(old.event_id, "hook") == ("delivered", 2, "")


async def test_a_restart_makes_due_the_retries_a_clock_running_ahead_planned_too_far_out(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    ahead, near = make_event(1), make_event(2)
    await enqueue(store, clock, [ahead, near], ("hook",))
    longest = POLICY.longest_delay
    planned_ahead = clock() + timedelta(seconds=longest + 90)  # on a clock 90 s fast
    await store.mark_retry(ahead.event_id, "hook", next_attempt_at=planned_ahead, reason="x")
    planned_near = clock() + timedelta(seconds=longest)  # the longest wait the policy sets
    await store.mark_retry(near.event_id, "hook", next_attempt_at=planned_near, reason="y")

    hook.script([500])  # still failing: the first success would release every retry anyway
    restarted = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock)
    assert (await restarted.drain()).retrying == 1
    assert hook.event_ids() == [ahead.event_id]  # tried at once, not 90 s late
    assert await store.outcome(near.event_id, "hook") == ("pending", 1, "y")  # a real wait


async def test_a_400_fails_at_once_and_is_never_sent_again(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    event = make_event(1)
    await enqueue(store, clock, [event], ("hook",))
    hook.script([Reply(400, body="unknown field")])
    d = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock)
    report = await d.drain()
    assert (report.delivered, report.failed, report.retrying) == (0, 1, 0)
    clock.advance(86400)
    await d.drain()
    assert len(hook.received) == 1
    assert await store.outcome(event.event_id, "hook") == ("failed", 1, "HTTP 400: unknown field")


async def test_a_429_retry_after_longer_than_the_backoff_is_respected(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    await enqueue(store, clock, [make_event(1)], ("hook",))
    hook.script([Reply(429, headers={"Retry-After": "120"})])
    d = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock)
    await d.drain()
    clock.advance(119)
    await d.drain()
    assert len(hook.received) == 1
    clock.advance(1)
    assert (await d.drain()).delivered == 1


async def test_a_retry_after_shorter_than_the_backoff_does_not_shorten_it(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    await enqueue(store, clock, [make_event(1)], ("hook",))
    hook.script([Reply(503, headers={"Retry-After": "1"})])
    d = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock)
    await d.drain()
    assert await store.next_due_at() == T0 + timedelta(seconds=5)


async def test_a_retryable_failure_past_max_age_is_given_up(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    event = make_event(1)
    await enqueue(store, clock, [event], ("hook",))
    hook.script([500, 502])
    policy = DeliveryPolicy(backoff=(5,), max_age_s=60)
    d = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock, policy)
    assert (await d.drain()).retrying == 1
    clock.advance(60)
    report = await d.drain()
    assert (report.failed, report.retrying) == (1, 0)
    status, attempts, reason = await store.outcome(event.event_id, "hook")
    assert (status, attempts) == ("failed", 2)
    assert reason == "gave up after 2 attempts: HTTP 502"
    clock.advance(3600)
    await d.drain()
    assert len(hook.received) == 2


async def test_a_failing_sink_does_not_hold_up_another(
    store: Store,
    clock: ManualClock,
    hook: Receiver,
    chat: Receiver,
    session: aiohttp.ClientSession,
) -> None:
    events = [make_event(n) for n in range(3)]
    await enqueue(store, clock, events, ("chat", "hook"))
    hook.hold()  # hook hangs on its first request while chat gets everything
    sinks: dict[str, Sink] = {
        "hook": webhook("hook", hook, session),
        "chat": webhook("chat", chat, session),
    }
    drain = asyncio.create_task(dispatcher(store, sinks, clock).drain())
    await chat.wait_for_requests(3, timeout=2)
    assert len(hook.received) == 1
    assert not drain.done()
    hook.release()
    report = await drain
    assert report.delivered == 6
    assert chat.event_ids() == [e.event_id for e in events]


async def test_after_a_retryable_failure_a_sink_gets_nothing_more_in_that_drain(
    store: Store,
    clock: ManualClock,
    hook: Receiver,
    chat: Receiver,
    session: aiohttp.ClientSession,
) -> None:
    events = [make_event(n) for n in range(3)]
    await enqueue(store, clock, events, ("chat", "hook"))
    hook.script([503])
    sinks: dict[str, Sink] = {
        "hook": webhook("hook", hook, session),
        "chat": webhook("chat", chat, session),
    }
    d = dispatcher(store, sinks, clock)
    report = await d.drain()
    assert (report.delivered, report.retrying) == (3, 1)
    assert len(hook.received) == 1  # one request to a sink that is down, not one per row
    assert await store.pending_by_sink() == {"hook": 3}
    report = await d.drain()  # the rows never tried are due now, and the failed one follows
    assert report.delivered == 3
    assert hook.event_ids() == [e.event_id for e in (*events, events[0])]


async def test_a_backlog_of_a_sink_that_is_down_does_not_starve_the_sinks_behind_it(
    store: Store,
    clock: ManualClock,
    hook: Receiver,
    chat: Receiver,
    session: aiohttp.ClientSession,
) -> None:
    await enqueue(store, clock, [make_event(n) for n in range(6)], ("hook",))
    later = [make_event(n) for n in range(6, 8)]
    await enqueue(store, clock, later, ("chat",))
    hook.script([503])
    sinks: dict[str, Sink] = {
        "hook": webhook("hook", hook, session),
        "chat": webhook("chat", chat, session),
    }
    policy = DeliveryPolicy(backoff=(5,), batch_size=2)
    report = await dispatcher(store, sinks, clock, policy).drain()
    assert (report.delivered, report.retrying) == (2, 1)
    assert len(hook.received) == 1
    assert chat.event_ids() == [e.event_id for e in later]


async def test_rows_of_one_sink_are_sent_one_at_a_time_in_event_order(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    first = [make_event(n) for n in range(4)]
    await enqueue(store, clock, first, ("hook",))
    clock.advance(1)
    second = [make_event(n) for n in range(4, 7)]
    await enqueue(store, clock, second, ("hook",))
    policy = DeliveryPolicy(backoff=(5,), batch_size=2)
    report = await dispatcher(
        store, {"hook": webhook("hook", hook, session)}, clock, policy
    ).drain()
    assert report.delivered == 7  # a burst larger than batch_size drains in one call
    assert hook.event_ids() == [e.event_id for e in first + second]


async def test_the_observer_hears_every_outcome(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    await enqueue(store, clock, [make_event(1), make_event(2)], ("hook",))
    hook.script([500, 200, 400])
    observed: list[tuple[str, str]] = []
    d = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock, observed=observed)
    await d.drain()
    clock.advance(5)
    await d.drain()
    assert observed == [("hook", "retry"), ("hook", "delivered"), ("hook", "failed")]


async def test_rows_for_a_sink_no_longer_configured_are_failed_without_a_send(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    event = make_event(1)
    await enqueue(store, clock, [event], ("hook", "old"))
    report = await dispatcher(store, {"hook": webhook("hook", hook, session)}, clock).drain()
    assert (report.delivered, report.failed) == (1, 1)
    assert await store.outcome(event.event_id, "old") == ("failed", 0, "sink removed from config")


class ExplodingSink:
    """A sink with a bug: it raises something that is not a SinkError."""

    name = "buggy"

    async def send(self, notification: Notification) -> None:
        raise RuntimeError("token=CANARY-BUG leaked https://hooks.example/CANARY-TOKEN")


async def test_an_unexpected_sink_exception_is_retryable_and_logged_without_secrets(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    event = make_event(1)
    await enqueue(store, clock, [event], ("buggy", "hook"))
    sinks: dict[str, Sink] = {"buggy": ExplodingSink(), "hook": webhook("hook", hook, session)}
    with capture_logs() as logs:
        report = await dispatcher(store, sinks, clock).drain()
    assert (report.delivered, report.retrying) == (1, 1)
    assert await store.outcome(event.event_id, "buggy") == (
        "pending",
        1,
        "unexpected RuntimeError in sink",
    )
    (entry,) = [e for e in logs if e["event"] == "sink raised an unexpected error"]
    assert entry["error_type"] == "RuntimeError"
    assert "CANARY" not in repr(logs)


async def test_no_url_or_token_reaches_the_outbox_or_the_logs(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    event = make_event(1)
    await enqueue(store, clock, [event], ("hook",))
    hook.script([Reply(500, body="cannot forward to https://hooks.example/CANARY-TOKEN")])
    url = hook.url + "/CANARY-TOKEN?token=CANARY-TOKEN"
    sink = WebhookSink("hook", url, session=session, project_id="p")
    with capture_logs() as logs:
        await dispatcher(store, {"hook": sink}, clock).drain()
    _, _, reason = await store.outcome(event.event_id, "hook")
    assert reason.startswith("HTTP 500")
    assert "CANARY" not in reason
    assert logs and "CANARY" not in repr(logs)


async def test_health_changes_are_logged_once_not_per_row(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    await enqueue(store, clock, [make_event(n) for n in range(3)], ("hook",))
    hook.script([500, 500, 500])
    d = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock)
    with capture_logs() as logs:
        for _ in range(3):
            await d.drain()
        clock.advance(60)
        await d.drain()
    events = [(e["event"], e["log_level"]) for e in logs if e["log_level"] != "debug"]
    assert events == [("sink failing", "warning"), ("sink recovered", "info")]


async def test_no_send_starts_after_the_deadline(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    await enqueue(store, clock, [make_event(1)], ("hook",))
    d = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock)
    report = await d.drain(deadline=asyncio.get_running_loop().time())
    assert report.delivered == 0 and hook.received == []
    assert await store.pending_by_sink() == {"hook": 1}


async def test_a_cancelled_drain_leaves_the_row_pending_for_a_resend(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    event = make_event(1)
    await enqueue(store, clock, [event], ("hook",))
    hook.hold()
    d = dispatcher(store, {"hook": webhook("hook", hook, session)}, clock)
    drain = asyncio.create_task(d.drain())
    await hook.wait_for_requests(1, timeout=2)
    drain.cancel()
    with pytest.raises(asyncio.CancelledError):
        await drain
    hook.release()
    assert await store.outcome(event.event_id, "hook") == ("pending", 0, "")
    assert (await d.drain()).delivered == 1
    assert hook.event_ids() == [event.event_id, event.event_id]
    assert len(hook.answered) == 1


def test_a_policy_with_a_negative_backoff_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        DeliveryPolicy(backoff=(5, -1))


# -- rate budgets and digests ---------------------------------------------------------------------


def per_minute(limit: int, clock: ManualClock) -> dict[str, RateBudget]:
    return {"hook": RateBudget([Window(limit, 60.0)], clock=clock)}


def listed(receiver: Receiver) -> list[str]:
    """Every event id the receiver was told about, singles and digests alike, in order."""
    ids: list[str] = []
    for payload in receiver.payloads():
        if payload.get("kind") == "digest":
            ids.extend(e["event_id"] for e in payload["events"])
        else:
            ids.append(payload["event_id"])
    return ids


async def test_rows_within_the_budget_go_one_message_each(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    events = [make_event(n) for n in range(3)]
    await enqueue(store, clock, events, ("hook",))
    sinks: dict[str, Sink] = {"hook": webhook("hook", hook, session)}
    report = await dispatcher(store, sinks, clock, budgets=per_minute(3, clock)).drain()
    assert (report.delivered, report.digests) == (3, 0)
    assert hook.event_ids() == [e.event_id for e in events]


async def test_more_rows_than_the_budget_allows_go_as_one_digest_of_all_of_them(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    events = [make_event(n) for n in range(7)]
    await enqueue(store, clock, events, ("hook",))
    observed: list[tuple[str, str]] = []
    d = dispatcher(
        store,
        {"hook": webhook("hook", hook, session)},
        clock,
        observed=observed,
        budgets=per_minute(3, clock),
    )
    report = await d.drain()
    assert (report.delivered, report.digests, report.deferred) == (7, 1, 0)
    (got,) = hook.received
    digest = Notification("hook", tuple(events))
    assert got.json["kind"] == "digest" and got.json["count"] == 7
    assert got.headers["X-Notification-Id"] == digest.notification_id
    assert listed(hook) == [e.event_id for e in events]  # in event order
    outcomes = [await store.outcome(e.event_id, "hook") for e in events]
    assert outcomes == [("delivered", 1, "")] * len(events)
    assert observed == [("hook", "delivered")] * 7


async def test_a_spent_budget_defers_the_rows_to_the_next_free_slot(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    sinks: dict[str, Sink] = {"hook": webhook("hook", hook, session)}
    d = dispatcher(store, sinks, clock, budgets=per_minute(2, clock))
    await enqueue(store, clock, [make_event(0), make_event(1)], ("hook",))
    await d.drain()
    clock.advance(10)
    await enqueue(store, clock, [make_event(2)], ("hook",))
    report = await d.drain()
    assert (report.delivered, report.deferred) == (0, 1)
    assert await store.next_due_at() == T0 + timedelta(seconds=60)  # persisted on the row
    assert await store.outcome(make_event(2).event_id, "hook") == ("pending", 0, "")
    clock.advance(49)
    assert (await d.drain()).delivered == 0
    clock.advance(1)
    assert (await d.drain()).delivered == 1
    assert listed(hook) == [make_event(n).event_id for n in range(3)]


async def test_a_new_dispatcher_over_the_same_store_does_not_send_early(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    sinks: dict[str, Sink] = {"hook": webhook("hook", hook, session)}
    await enqueue(store, clock, [make_event(0), make_event(1)], ("hook",))
    await dispatcher(store, sinks, clock, budgets=per_minute(2, clock)).drain()
    clock.advance(30)
    await enqueue(store, clock, [make_event(2)], ("hook",))  # a new event, due now, after a restart
    restarted = dispatcher(store, sinks, clock, budgets=per_minute(2, clock))
    assert (await restarted.drain()).delivered == 0
    assert len(hook.received) == 2
    clock.advance(30)
    assert (await restarted.drain()).delivered == 1


async def test_a_digest_that_fails_retryably_reschedules_every_row(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    events = [make_event(n) for n in range(4)]
    await enqueue(store, clock, events, ("hook",))
    hook.script([503])
    d = dispatcher(
        store, {"hook": webhook("hook", hook, session)}, clock, budgets=per_minute(2, clock)
    )
    report = await d.drain()
    assert (report.delivered, report.retrying, report.digests) == (0, 4, 1)
    outcomes = [await store.outcome(e.event_id, "hook") for e in events]
    assert outcomes == [("pending", 1, "HTTP 503")] * len(events)
    assert await store.next_due_at() == T0 + timedelta(seconds=5)
    clock.advance(5)
    report = await d.drain()  # 1 slot left, 4 rows due: the same rows as one digest again
    assert (report.delivered, report.digests) == (4, 1)
    assert listed(hook) == [e.event_id for e in events] * 2


async def test_a_digest_that_fails_permanently_fails_every_row_with_the_reason(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    events = [make_event(n) for n in range(3)]
    await enqueue(store, clock, events, ("hook",))
    hook.script([Reply(413, body="payload too large")])
    d = dispatcher(
        store, {"hook": webhook("hook", hook, session)}, clock, budgets=per_minute(1, clock)
    )
    report = await d.drain()
    assert (report.failed, report.retrying) == (3, 0)
    for event in events:
        assert await store.outcome(event.event_id, "hook") == (
            "failed",
            1,
            "HTTP 413: payload too large",
        )


async def test_a_vendor_retry_after_pauses_the_budget_and_holds_every_row_of_the_sink(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    await enqueue(store, clock, [make_event(0), make_event(1)], ("hook",))
    hook.script([Reply(429, headers={"Retry-After": "600"})])
    d = dispatcher(
        store, {"hook": webhook("hook", hook, session)}, clock, budgets=per_minute(10, clock)
    )
    await d.drain()
    assert await store.next_due_at() == T0 + timedelta(seconds=600)
    clock.advance(60)
    await enqueue(store, clock, [make_event(2)], ("hook",))  # new rows wait out the pause too
    report = await d.drain()
    assert (report.delivered, report.deferred) == (0, 1)
    assert len(hook.received) == 1
    clock.advance(540)
    assert (await d.drain()).delivered == 3


async def test_a_sink_out_of_budget_does_not_hold_up_another(
    store: Store,
    clock: ManualClock,
    hook: Receiver,
    chat: Receiver,
    session: aiohttp.ClientSession,
) -> None:
    events = [make_event(n) for n in range(3)]
    await enqueue(store, clock, events, ("chat", "hook"))
    budgets = {"hook": RateBudget([Window(1, 60.0)], clock=clock)}
    budgets["hook"].record()
    sinks: dict[str, Sink] = {
        "hook": webhook("hook", hook, session),
        "chat": webhook("chat", chat, session),
    }
    report = await dispatcher(store, sinks, clock, budgets=budgets).drain()
    assert (report.delivered, report.deferred) == (3, 3)
    assert hook.received == []
    assert chat.event_ids() == [e.event_id for e in events]


async def test_a_backlog_larger_than_the_digest_limit_goes_in_several_digests(
    store: Store, clock: ManualClock, hook: Receiver, session: aiohttp.ClientSession
) -> None:
    events = [make_event(n) for n in range(7)]
    await enqueue(store, clock, events, ("hook",))
    policy = DeliveryPolicy(backoff=(5,), batch_size=2, digest_limit=3)
    d = dispatcher(
        store, {"hook": webhook("hook", hook, session)}, clock, policy, budgets=per_minute(2, clock)
    )
    report = await d.drain()
    assert (report.delivered, report.digests, report.deferred) == (6, 2, 1)
    clock.advance(60)
    assert (await d.drain()).delivered == 1
    assert listed(hook) == [e.event_id for e in events]


async def test_a_backlog_held_back_by_a_budget_does_not_starve_the_sinks_behind_it(
    store: Store,
    clock: ManualClock,
    hook: Receiver,
    chat: Receiver,
    session: aiohttp.ClientSession,
) -> None:
    await enqueue(store, clock, [make_event(n) for n in range(6)], ("hook",))
    later = [make_event(n) for n in range(6, 8)]
    await enqueue(store, clock, later, ("chat",))
    budgets = per_minute(1, clock)
    budgets["hook"].record()
    sinks: dict[str, Sink] = {
        "hook": webhook("hook", hook, session),
        "chat": webhook("chat", chat, session),
    }
    policy = DeliveryPolicy(backoff=(5,), batch_size=2)
    report = await dispatcher(store, sinks, clock, policy, budgets=budgets).drain()
    assert (report.delivered, report.deferred) == (2, 6)
    assert chat.event_ids() == [e.event_id for e in later]
