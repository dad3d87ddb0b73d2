"""The lifecycle rules as pure functions: stuck, overdue, streaks, recovered, fire-once marks."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.codec import event_from_dict, event_to_dict, webhook_payload
from monitor.config import ConfigError, RulesSettings, parse_settings
from monitor.models import (
    Event,
    EventKind,
    HistoryUpdate,
    Job,
    JobState,
    NameHistory,
    Notification,
    RuleMark,
    RuleMemory,
    event_id_for,
)
from monitor.rules import EMPTY_MEMORY, HISTORY_RUNS, RuleOutcome, evaluate, overdue_limit, p95
from monitor.sinks.alertmanager import AlertRules, alertname_for, render
from monitor.sinks.console import render_line
from monitor.sinks.content import MessageContext, Severity, build_message
from monitor.store import open_store

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
TARGET = "etl"
DEFAULTS = RulesSettings()


def job(
    job_id: str = "j1",
    state: JobState = JobState.STARTING,
    *,
    name: str = "nightly_etl",
    since: datetime = T0,
    created: datetime | None = None,
    duration_ms: int | None = None,
) -> Job:
    return Job(
        id=job_id,
        state=state,
        queue=TARGET,
        name=name,
        create_time=created or since,
        state_since=since,
        duration_ms=duration_ms,
    )


def ended(
    job_id: str, to_state: JobState, *, name: str = "nightly_etl", minutes: float = 10
) -> Event:
    """A `running → to_state` transition of a run that took `minutes`."""
    finished = job(
        job_id,
        to_state,
        name=name,
        since=T0,
        created=T0 - timedelta(minutes=minutes),
        duration_ms=int(minutes * 60_000),
    )
    return Event(
        event_id=event_id_for(TARGET, job_id, EventKind.TRANSITION, JobState.RUNNING, to_state, T0),
        kind=EventKind.TRANSITION,
        target=TARGET,
        job=finished,
        from_state=JobState.RUNNING,
        to_state=to_state,
        observed_at=T0,
    )


def run(
    jobs: list[Job],
    *,
    at: timedelta,
    memory: RuleMemory = EMPTY_MEMORY,
    events: tuple[Event, ...] = (),
    settings: RulesSettings = DEFAULTS,
) -> RuleOutcome:
    return evaluate(
        {j.id: j for j in jobs}, events, memory, target=TARGET, now=T0 + at, settings=settings
    )


def remember(memory: RuleMemory, update: HistoryUpdate) -> RuleMemory:
    """What the store would hold after writing `update` (the tests' in-memory store)."""
    names = {**memory.names, **{h.name: h for h in update.names}}
    marks = {k: m for k, m in memory.marks.items() if k not in update.marks_cleared}
    marks.update({(m.job_id, m.rule): m for m in update.marks_added})
    return RuleMemory(names=names, marks=marks)


def kinds(outcome: RuleOutcome) -> list[tuple[str, str]]:
    return [(e.kind.value, e.job.id) for e in outcome.events]


# -- stuck -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "minutes", "fires"),
    [
        (JobState.STARTING, 15, False),
        (JobState.STARTING, 16, True),
        (JobState.RECOVERING, 16, False),
        (JobState.RECOVERING, 30, False),
        (JobState.RECOVERING, 31, True),
        (JobState.RUNNING, 600, False),
        (JobState.DEAD, 600, False),
    ],
)
def test_stuck_fires_only_after_the_threshold_of_the_state(
    state: JobState, minutes: int, fires: bool
) -> None:
    outcome = run([job(state=state)], at=timedelta(minutes=minutes))
    assert kinds(outcome) == ([("stuck", "j1")] if fires else [])


def test_a_stuck_event_says_how_long_and_the_limit() -> None:
    outcome = run([job()], at=timedelta(minutes=17))
    (event,) = outcome.events
    assert event.detail == "in starting for 17m (limit 15m)"
    assert (event.from_state, event.to_state) == (JobState.STARTING, JobState.STARTING)
    assert outcome.update.marks_added == (RuleMark("j1", "stuck", T0),)


def test_a_stuck_threshold_of_zero_turns_the_rule_off() -> None:
    settings = RulesSettings(stuck_starting_after=0)
    assert run([job()], at=timedelta(hours=5), settings=settings).events == ()


def test_stuck_fires_once_while_the_job_stays_in_the_same_state() -> None:
    first = run([job()], at=timedelta(minutes=16))
    memory = remember(EMPTY_MEMORY, first.update)
    again = run([job()], at=timedelta(minutes=40), memory=memory)
    assert kinds(first) == [("stuck", "j1")]
    assert again.events == ()
    assert again.update == HistoryUpdate()


def test_a_stuck_mark_is_cleared_when_the_job_moves_on_and_can_fire_in_the_next_state() -> None:
    memory = remember(EMPTY_MEMORY, run([job()], at=timedelta(minutes=16)).update)
    moved = job(state=JobState.RECOVERING, since=T0 + timedelta(minutes=20))
    cleared = run([moved], at=timedelta(minutes=21), memory=memory)
    assert cleared.update.marks_cleared == (("j1", "stuck"),)
    assert cleared.events == ()
    memory = remember(memory, cleared.update)
    later = run([moved], at=timedelta(minutes=51), memory=memory)
    assert kinds(later) == [("stuck", "j1")]
    assert later.events[0].detail == "in recovering for 31m (limit 30m)"


def test_a_mark_of_a_job_that_left_the_snapshot_is_cleared() -> None:
    memory = remember(EMPTY_MEMORY, run([job()], at=timedelta(minutes=16)).update)
    outcome = run([], at=timedelta(minutes=17), memory=memory)
    assert outcome.update.marks_cleared == (("j1", "stuck"),)


def test_the_stuck_event_id_is_stable_for_the_same_stay_in_a_state() -> None:
    a = run([job()], at=timedelta(minutes=16)).events[0]
    b = run([job()], at=timedelta(minutes=25)).events[0]
    c = run([job(since=T0 + timedelta(hours=1))], at=timedelta(hours=2)).events[0]
    assert a.event_id == b.event_id != c.event_id


# -- overdue -----------------------------------------------------------------------------------

LIMITS = RulesSettings.model_validate(
    {
        "overdue": [
            {"job_name": "nightly_.*", "max_runtime": "2h"},
            {"job_name": ".*", "max_runtime": "6h"},
        ]
    }
)


@pytest.mark.parametrize(
    ("name", "hours", "detail"),
    [
        ("nightly_etl", 2, None),
        ("nightly_etl", 2.5, "running for 2h30m (limit 2h)"),
        ("hourly_etl", 2.5, None),
        ("hourly_etl", 7, "running for 7h (limit 6h)"),
        ("my_nightly_etl", 2.5, None),
    ],
)
def test_an_absolute_limit_applies_to_the_first_regex_matching_the_whole_name(
    name: str, hours: float, detail: str | None
) -> None:
    running = job(state=JobState.RUNNING, name=name)
    outcome = run([running], at=timedelta(hours=hours), settings=LIMITS)
    assert [e.detail for e in outcome.events] == ([detail] if detail else [])
    assert all(e.kind is EventKind.OVERDUE for e in outcome.events)


def history(*minutes: float, name: str = "nightly_etl") -> RuleMemory:
    runs = tuple(m * 60 for m in minutes)
    return RuleMemory(names={name: NameHistory(name, runs, 0, "success")}, marks={})


@pytest.mark.parametrize(
    ("runs", "running_minutes", "fires"),
    [
        ((10, 10, 10, 10), 500, False),  # 4 runs: too few for a p95
        ((10, 10, 10, 10, 10), 30, False),  # 3 x 10m, not beyond
        ((10, 10, 10, 10, 10), 31, True),
        ((10, 10, 10, 10, 12), 31, False),  # p95 of five runs is the largest: 36m
        ((10, 10, 10, 10, 12), 37, True),
    ],
)
def test_overdue_by_p95_needs_five_runs_and_exceeds_k_times_the_p95(
    runs: tuple[float, ...], running_minutes: int, fires: bool
) -> None:
    running = job(state=JobState.RUNNING)
    outcome = run([running], at=timedelta(minutes=running_minutes), memory=history(*runs))
    assert kinds(outcome) == ([("overdue", "j1")] if fires else [])


def test_the_p95_detail_names_the_factor_and_the_p95() -> None:
    outcome = run(
        [job(state=JobState.RUNNING)], at=timedelta(minutes=31), memory=history(*[10] * 5)
    )
    assert outcome.events[0].detail == "running for 31m (limit 30m = 3x p95 10m)"


def test_an_overdue_factor_of_zero_turns_the_p95_rule_off() -> None:
    settings = RulesSettings(overdue_factor=0)
    running = job(state=JobState.RUNNING)
    assert (
        run([running], at=timedelta(days=1), memory=history(*[1] * 9), settings=settings).events
        == ()
    )


def test_the_smaller_of_the_absolute_and_the_p95_limits_applies() -> None:
    found = overdue_limit(
        job(state=JobState.RUNNING), history(*[10] * 5).names["nightly_etl"], LIMITS
    )
    assert found is not None and found[0] == 30 * 60


def test_p95_is_the_nearest_rank() -> None:
    assert p95(range(1, 101)) == 95
    assert p95([5.0]) == 5.0
    assert p95([1, 2, 3, 4, 100]) == 100
    with pytest.raises(ValueError):
        p95([])


def test_overdue_fires_once_per_run() -> None:
    running = job(state=JobState.RUNNING)
    first = run([running], at=timedelta(hours=3), settings=LIMITS)
    memory = remember(EMPTY_MEMORY, first.update)
    again = run([running], at=timedelta(hours=4), settings=LIMITS, memory=memory)
    assert kinds(first) == [("overdue", "j1")] and again.events == ()


# -- streaks and recovered ---------------------------------------------------------------------


def test_each_failure_in_a_row_carries_its_streak_and_a_success_resets_it() -> None:
    memory = EMPTY_MEMORY
    streaks = []
    for index, state in enumerate(
        [JobState.DEAD, JobState.DEAD, JobState.KILLED, JobState.SUCCESS, JobState.DEAD]
    ):
        outcome = run([], at=timedelta(0), memory=memory, events=(ended(f"r{index}", state),))
        memory = remember(memory, outcome.update)
        streaks.append([(e.kind.value, e.streak) for e in outcome.events])
    assert streaks == [
        [("transition", 1)],
        [("transition", 2)],
        [("transition", 3)],
        [("transition", 0), ("recovered", 3)],
        [("transition", 1)],
    ]


def test_recovered_follows_the_success_and_says_how_many_failures_it_ends() -> None:
    memory = remember(
        EMPTY_MEMORY, run([], at=timedelta(0), events=(ended("r1", JobState.DEAD),)).update
    )
    success = ended("r2", JobState.SUCCESS)
    outcome = run([], at=timedelta(0), memory=memory, events=(success,))
    assert outcome.events[0] == success
    recovered = outcome.events[1]
    assert recovered.kind is EventKind.RECOVERED
    assert recovered.detail == "succeeded after 1 consecutive failure"
    assert (recovered.job, recovered.to_state) == (success.job, JobState.SUCCESS)
    assert recovered.event_id != success.event_id
    assert outcome.rule_events == (recovered,)


def test_a_success_after_a_success_is_not_a_recovery() -> None:
    memory = history(10)
    outcome = run([], at=timedelta(0), memory=memory, events=(ended("r1", JobState.SUCCESS),))
    assert kinds(outcome) == [("transition", "r1")]


def test_streaks_are_counted_per_job_name() -> None:
    events = (
        ended("a1", JobState.DEAD, name="a"),
        ended("b1", JobState.DEAD, name="b"),
        ended("a2", JobState.DEAD, name="a"),
    )
    outcome = run([], at=timedelta(0), events=events)
    assert [e.streak for e in outcome.events] == [1, 1, 2]
    assert {h.name: h.failures for h in outcome.update.names} == {"a": 2, "b": 1}


def test_an_unnamed_job_has_no_streak_and_no_history() -> None:
    outcome = run([], at=timedelta(0), events=(ended("x", JobState.DEAD, name=""),))
    assert outcome.events[0].streak == 0 and outcome.update.names == ()


def test_a_vanished_job_neither_counts_as_a_failure_nor_breaks_a_streak() -> None:
    gone = dataclasses.replace(ended("v", JobState.DEAD), kind=EventKind.VANISHED, to_state=None)
    outcome = run([], at=timedelta(0), memory=history(10), events=(gone,))
    assert outcome.events == (gone,) and outcome.update.names == ()


def test_successful_durations_are_recorded_and_only_the_last_fifty_kept() -> None:
    memory = history(*range(1, HISTORY_RUNS + 1))
    outcome = run(
        [], at=timedelta(0), memory=memory, events=(ended("r", JobState.SUCCESS, minutes=99),)
    )
    (kept,) = outcome.update.names
    assert len(kept.durations_s) == HISTORY_RUNS
    assert kept.durations_s[0] == 2 * 60 and kept.durations_s[-1] == 99 * 60


# -- persistence and config ----------------------------------------------------------------------


async def test_the_store_writes_the_rule_state_with_the_poll_and_reads_it_back(
    tmp_path: Path,
) -> None:
    store = await open_store(tmp_path / "state.db")
    try:
        first = run([job()], at=timedelta(minutes=16), events=(ended("r1", JobState.DEAD),))
        await store.commit_poll(
            TARGET, upserts=[job()], removals=[], events=first.events, now=T0, history=first.update
        )
        memory = await store.load_rule_memory(TARGET)
        assert memory == remember(EMPTY_MEMORY, first.update)
        assert await store.load_rule_memory("other") == EMPTY_MEMORY
        cleared = run([], at=timedelta(minutes=17), memory=memory)
        await store.commit_poll(
            TARGET, upserts=[], removals=["j1"], events=(), now=T0, history=cleared.update
        )
        assert (await store.load_rule_memory(TARGET)).marks == {}
        assert (await store.load_rule_memory(TARGET)).names["nightly_etl"].failures == 1
    finally:
        await store.close()


async def test_a_failed_commit_writes_no_rule_state(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "state.db")
    try:
        outcome = run([job()], at=timedelta(minutes=16))
        foreign = dataclasses.replace(outcome.events[0], target="elsewhere")
        with pytest.raises(ValueError):
            await store.commit_poll(
                TARGET, upserts=[], removals=[], events=(foreign,), now=T0, history=outcome.update
            )
        assert await store.load_rule_memory(TARGET) == EMPTY_MEMORY
    finally:
        await store.close()


def test_the_rules_config_reads_durations_and_rejects_a_bad_regex() -> None:
    base = {
        "dli": {
            "endpoint": "https://dli.cn-north-4.myhuaweicloud.com",
            "project_id": "p1",
            "auth": {"type": "none"},
        },
        "queues": ["etl"],
    }
    settings = parse_settings(
        {
            **base,
            "rules": {
                "stuck_starting_after": "20m",
                "overdue": [{"job_name": "a.*", "max_runtime": "1h30m"}],
            },
        }
    )
    assert settings.rules.stuck_starting_after == 1200
    assert settings.rules.overdue[0].max_runtime == 5400
    assert parse_settings(base).rules == RulesSettings()
    with pytest.raises(ConfigError, match=r"rules\.overdue\[0\]\.job_name: not a valid regular"):
        parse_settings({**base, "rules": {"overdue": [{"job_name": "(", "max_runtime": "1h"}]}})


def test_the_rules_stay_pure() -> None:
    source = (Path(__file__).resolve().parents[2] / "monitor" / "rules.py").read_text()
    for word in ("import asyncio", "import structlog", "import logging", "utc_now", "sqlite3"):
        assert word not in source


# -- how the rule events read and travel ---------------------------------------------------------


def stuck_event() -> Event:
    return run([job()], at=timedelta(minutes=17)).events[0]


def third_failure() -> Event:
    return dataclasses.replace(ended("r3", JobState.DEAD), streak=3)


def test_a_chat_message_shows_the_streak_of_a_failure() -> None:
    message = build_message(Notification("chat", (third_failure(),)), MessageContext())
    facts = {f.label: f.value for f in message.facts}
    assert facts["Streak"] == "3rd consecutive failure of nightly_etl"
    assert message.severity is Severity.CRITICAL


def test_a_first_failure_shows_no_streak_line() -> None:
    message = build_message(Notification("chat", (ended("r1", JobState.DEAD),)), MessageContext())
    assert "Streak" not in {f.label for f in message.facts}


def test_a_chat_message_for_a_stuck_job_has_its_title_detail_and_a_warning() -> None:
    message = build_message(Notification("chat", (stuck_event(),)), MessageContext())
    facts = {f.label: f.value for f in message.facts}
    assert message.title == "DLI job nightly_etl STUCK on etl"
    assert facts["Transition"] == "stuck in starting"
    assert facts["Detail"] == "in starting for 17m (limit 15m)"
    assert message.severity is Severity.WARNING


def test_a_recovered_message_is_ok_and_titled_recovered() -> None:
    memory = remember(
        EMPTY_MEMORY, run([], at=timedelta(0), events=(ended("r1", JobState.DEAD),)).update
    )
    outcome = run([], at=timedelta(0), memory=memory, events=(ended("r2", JobState.SUCCESS),))
    message = build_message(Notification("chat", outcome.rule_events), MessageContext())
    assert message.title == "DLI job nightly_etl RECOVERED on etl"
    assert message.severity is Severity.OK


def test_the_console_line_shows_the_rule_and_the_streak() -> None:
    assert "stuck in starting" in render_line(stuck_event())
    assert "in starting for 17m (limit 15m)" in render_line(stuck_event())
    assert "failure #3 in a row" in render_line(third_failure())


@pytest.mark.parametrize(
    ("event", "alertname"),
    [
        (stuck_event(), "DLIBatchJobStuck"),
        (
            run([job(state=JobState.RUNNING)], at=timedelta(hours=3), settings=LIMITS).events[0],
            "DLIBatchJobOverdue",
        ),
        (third_failure(), "DLIBatchJobFailed"),
        (ended("r4", JobState.SUCCESS), None),
    ],
)
def test_alertmanager_names_the_alert_of_each_rule(event: Event, alertname: str | None) -> None:
    assert alertname_for(event) == alertname


def test_alertmanager_resolves_a_stuck_alert_when_the_job_starts_running() -> None:
    rules = AlertRules(project_id="p1")
    stuck = stuck_event()
    fired = render(Notification("am", (stuck,)), {}, now=T0, rules=rules)
    (alert,) = fired.firing
    assert (
        alert.annotations["summary"]
        == "DLI job nightly_etl is stuck on queue etl: stuck in starting"
    )
    assert "Detail: in starting for 17m (limit 15m)" in alert.annotations["description"]
    started = dataclasses.replace(
        stuck,
        kind=EventKind.TRANSITION,
        job=dataclasses.replace(stuck.job, state=JobState.RUNNING),
        to_state=JobState.RUNNING,
        detail="",
    )
    later = render(Notification("am", (started,)), {alert.key: alert}, now=T0, rules=rules)
    assert [a.alertname for a in later.resolved] == ["DLIBatchJobStuck"]


def test_streak_and_detail_round_trip_through_the_codec_and_reach_the_webhook() -> None:
    event = dataclasses.replace(third_failure(), detail="why")
    assert event_from_dict(event_to_dict(event)) == event
    old = event_to_dict(event)
    del old["streak"], old["detail"]
    assert event_from_dict(old) == dataclasses.replace(event, streak=0, detail="")
    payload = webhook_payload(event, "p1")
    assert (payload["streak"], payload["detail"]) == (3, "why")
