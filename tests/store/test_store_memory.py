"""The store contract, rule memory and silences: written, read back, kept across a restart.

Runs against every backend in `BACKENDS` (`conftest.py`), through the `Store` contract only.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.models import HistoryUpdate, NameHistory, RuleMark, RuleMemory
from monitor.models_silence import SilenceError
from monitor.store import Store
from tests.store.support import T0, Reopen, event

LATER = T0 + timedelta(hours=2)
EMPTY = RuleMemory(names={}, marks={})


async def test_rule_memory_is_written_with_the_poll_and_read_back_per_target(
    store: Store,
) -> None:
    history = NameHistory("nightly", durations_s=(60.0, 90.5), failures=2, last_outcome="failure")
    stuck = RuleMark("j1", "stuck", T0)
    update = HistoryUpdate(names=(history,), marks_added=(stuck, RuleMark("j2", "overdue", None)))
    await store.commit_poll("etl", upserts=(), removals=(), events=(), now=T0, history=update)
    memory = await store.load_rule_memory("etl")
    assert memory.names == {"nightly": history}
    assert memory.marks == {
        ("j1", "stuck"): stuck,
        ("j2", "overdue"): RuleMark("j2", "overdue", None),
    }
    assert await store.load_rule_memory("other") == EMPTY


async def test_cleared_marks_go_before_added_ones_and_a_history_is_replaced_whole(
    store: Store,
) -> None:
    first = HistoryUpdate(
        names=(NameHistory("n", (1.0,), 1, "failure"),), marks_added=(RuleMark("j", "stuck", T0),)
    )
    await store.commit_poll("etl", upserts=(), removals=(), events=(), now=T0, history=first)
    again = RuleMark("j", "stuck", LATER)
    second = HistoryUpdate(
        names=(NameHistory("n", (), 0, "success"),),
        marks_added=(again,),
        marks_cleared=(("j", "stuck"),),
    )
    await store.commit_poll("etl", upserts=(), removals=(), events=(), now=T0, history=second)
    memory = await store.load_rule_memory("etl")
    assert memory.names == {"n": NameHistory("n", (), 0, "success")}
    assert memory.marks == {("j", "stuck"): again}


async def test_a_failed_commit_writes_no_rule_memory(store: Store) -> None:
    update = HistoryUpdate(marks_added=(RuleMark("j", "stuck", T0),))
    with pytest.raises(ValueError):
        await store.commit_poll(
            "etl", upserts=(), removals=(), events=[event("a", target="x")], now=T0, history=update
        )
    assert await store.load_rule_memory("etl") == EMPTY


async def test_stored_silences_come_back_with_ids_and_all_their_fields(store: Store) -> None:
    first = await store.add_silence(
        job_name="nightly_.*", starts_at=T0, ends_at=LATER, comment="maint"
    )
    second = await store.add_silence(job_name=".*", queue="adhoc", starts_at=T0, ends_at=LATER)
    assert (first.id, second.id) == (1, 2)
    assert await store.list_silences() == [first, second]
    assert (await store.list_silences())[1].queue == "adhoc"
    assert (await store.list_silences())[0].comment == "maint"


async def test_an_invalid_silence_is_not_stored(store: Store) -> None:
    with pytest.raises(SilenceError):
        await store.add_silence(job_name="(bad", starts_at=T0, ends_at=LATER)
    with pytest.raises(SilenceError):
        await store.add_silence(job_name="x", starts_at=LATER, ends_at=T0)
    assert await store.list_silences() == []


async def test_active_silences_leave_out_expired_and_future_ones(store: Store) -> None:
    await store.add_silence(job_name="a", starts_at=T0 - timedelta(hours=3), ends_at=T0)
    current = await store.add_silence(job_name="b", starts_at=T0, ends_at=LATER)
    await store.add_silence(job_name="c", starts_at=LATER, ends_at=LATER + timedelta(hours=1))
    assert await store.active_silences(T0) == [current]


async def test_expiring_a_silence_ends_it_at_once_and_only_once(store: Store) -> None:
    s = await store.add_silence(job_name="nightly_.*", starts_at=T0, ends_at=LATER)
    now = T0 + timedelta(minutes=5)
    assert await store.expire_silence(s.id, now) is True
    assert await store.active_silences(now) == []
    assert (await store.list_silences())[0].ends_at == now
    assert await store.expire_silence(s.id, now + timedelta(minutes=1)) is False
    with pytest.raises(KeyError):
        await store.expire_silence(99, now)


async def test_expiring_a_scheduled_silence_keeps_it_valid(store: Store) -> None:
    s = await store.add_silence(job_name="x", starts_at=LATER, ends_at=LATER + timedelta(hours=1))
    assert await store.expire_silence(s.id, T0) is True
    (stored,) = await store.list_silences()
    assert stored.starts_at == stored.ends_at == T0


async def test_silences_and_rule_memory_survive_a_restart(store: Store, reopen: Reopen) -> None:
    added = await store.add_silence(job_name="nightly_.*", starts_at=T0, ends_at=LATER)
    update = HistoryUpdate(names=(NameHistory("n", (5.0,), 0, "success"),))
    await store.commit_poll("etl", upserts=(), removals=(), events=(), now=T0, history=update)
    await store.close()
    again = await reopen()
    assert await again.active_silences(T0) == [added]
    assert (await again.load_rule_memory("etl")).names == {"n": update.names[0]}
