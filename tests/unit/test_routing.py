"""Routing: route matching, first-match/continue, the default route, quiet hours, silences,
and the `routes:` config (validation with key paths, round trip through check-config)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from monitor.config import ConfigError, parse_settings, reference_table, render_effective
from monitor.models import Event, EventKind, Job, JobState, event_id_for
from monitor.models_explain import PlannedSink, SilenceNote
from monitor.routing import QuietHours, Route, Router, SilenceSource
from monitor.silences import Silence

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)  # a Sunday; 18:00 in Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")
SINKS = ("ding", "slack", "hook")


def event(
    name: str = "nightly_etl",
    queue: str = "etl",
    *,
    kind: EventKind = EventKind.TRANSITION,
    from_state: JobState | None = JobState.RUNNING,
    to_state: JobState | None = JobState.DEAD,
) -> Event:
    job = Job(id=f"id-{name}", state=to_state or JobState.RUNNING, queue=queue, name=name)
    return Event(
        event_id=event_id_for(queue, job.id, kind, from_state, to_state, T0),
        kind=kind,
        target=queue,
        job=job,
        from_state=from_state,
        to_state=to_state,
        observed_at=T0,
    )


async def sinks_of(router: Router, ev: Event, now: datetime = T0) -> list[str]:
    return [sink for sink, _ in await router.deliveries(ev, now)]


# --- matching --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "ev", "expected"),
    [
        (Route(("hook",), queue="etl*"), event(queue="etl_prod"), True),
        (Route(("hook",), queue="etl*"), event(queue="adhoc"), False),
        (Route(("hook",), queue="etl"), event(queue="ETL"), False),
        (Route(("hook",), job_name="nightly_.*"), event("nightly_etl"), True),
        (Route(("hook",), job_name="nightly"), event("nightly_etl"), False),
        (Route(("hook",), job_name="etl"), event("nightly_etl"), False),
        (Route(("hook",), kinds=frozenset({EventKind.VANISHED})), event(), False),
        (
            Route(("hook",), kinds=frozenset({EventKind.APPEARED})),
            event(kind=EventKind.APPEARED, from_state=None),
            True,
        ),
        (Route(("hook",), to_states=frozenset({JobState.DEAD})), event(), True),
        (
            Route(("hook",), to_states=frozenset({JobState.DEAD})),
            event(to_state=JobState.SUCCESS),
            False,
        ),
        (
            Route(("hook",), from_states=frozenset({JobState.STARTING})),
            event(from_state=JobState.RUNNING),
            False,
        ),
        (
            Route(("hook",), from_states=frozenset({JobState.RUNNING})),
            event(kind=EventKind.APPEARED, from_state=None),
            False,
        ),
        (Route(("hook",)), event(kind=EventKind.VANISHED, to_state=None), True),
    ],
)
def test_a_route_matches_only_when_every_given_condition_holds(
    route: Route, ev: Event, expected: bool
) -> None:
    assert route.matches(ev) is expected


async def test_the_first_matching_route_wins_without_continue() -> None:
    router = Router(
        [Route(("ding",), queue="etl"), Route(("slack",), queue="etl")],
        SINKS,
    )
    assert await sinks_of(router, event()) == ["ding"]


async def test_continue_collects_the_sinks_of_later_matching_routes_once_each() -> None:
    router = Router(
        [
            Route(("ding", "hook"), queue="etl", continue_=True),
            Route(("slack",), queue="adhoc"),
            Route(("hook", "slack"), to_states=frozenset({JobState.DEAD})),
            Route(("ding",)),
        ],
        SINKS,
    )
    assert await sinks_of(router, event()) == ["ding", "hook", "slack"]
    decision = router.decide(event(), T0)
    assert decision.routes == (0, 2)


async def test_a_recovery_goes_to_the_routes_that_got_the_failure() -> None:
    router = Router(
        [
            Route(("ding",), to_states=frozenset({JobState.DEAD})),
            Route(("slack",), to_states=frozenset({JobState.SUCCESS})),
        ],
        SINKS,
        default_sinks=["hook"],
    )
    recovered = event(
        kind=EventKind.RECOVERED, from_state=JobState.RUNNING, to_state=JobState.SUCCESS
    )
    success = event(kind=EventKind.TRANSITION, to_state=JobState.SUCCESS)
    assert await sinks_of(router, recovered) == ["ding"]
    assert await sinks_of(router, success) == ["slack"]


async def test_an_event_no_route_matches_goes_to_every_sink_by_default() -> None:
    router = Router([Route(("ding",), queue="adhoc")], SINKS)
    assert await sinks_of(router, event()) == list(SINKS)
    assert router.decide(event(), T0).routes == ()


async def test_default_sinks_replace_every_sink_for_unmatched_events() -> None:
    router = Router([Route(("ding",), queue="adhoc")], SINKS, default_sinks=["hook"])
    assert await sinks_of(router, event()) == ["hook"]


async def test_a_route_with_no_sinks_matches_and_notifies_nobody() -> None:
    router = Router([Route((), to_states=frozenset({JobState.SUCCESS}))], SINKS)
    done = event(to_state=JobState.SUCCESS)
    decision = router.decide(done, T0)
    assert decision.plan == () and decision.unrouted
    assert await sinks_of(router, event()) == list(SINKS)


def test_a_router_refuses_a_route_to_a_sink_that_is_not_configured() -> None:
    with pytest.raises(ValueError, match="ghost"):
        Router([Route(("ghost",))], SINKS)
    with pytest.raises(ValueError, match="ghost"):
        Router([], SINKS, default_sinks=["ghost"])


async def test_outside_quiet_hours_delivery_starts_now() -> None:
    quiet = QuietHours(time(22, 0), time(7, 0), SHANGHAI)
    router = Router([Route(("ding",), quiet_hours=quiet)], SINKS)
    assert await router.deliveries(event(), T0) == (("ding", T0),)  # 18:00 local


# --- quiet hours -------------------------------------------------------------------------------


def local(hour: int, minute: int = 0, day: int = 29) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "release"),
    [
        (local(21, 59), None),
        (local(22, 0), local(7, 0, day=30)),
        (local(23, 30), local(7, 0, day=30)),
        (local(3, 0, day=30), local(7, 0, day=30)),
        (local(6, 59, day=30), local(7, 0, day=30)),
        (local(7, 0, day=30), None),
    ],
)
def test_overnight_quiet_hours_hold_until_the_morning_in_their_own_time_zone(
    now: datetime, release: datetime | None
) -> None:
    quiet = QuietHours(time(22, 0), time(7, 0), SHANGHAI)
    assert quiet.release_at(now) == release


async def test_a_delayed_delivery_is_held_to_the_end_of_the_quiet_period_not_dropped() -> None:
    quiet = QuietHours(time(22, 0), time(7, 0), SHANGHAI)
    router = Router([Route(("ding",), queue="etl", quiet_hours=quiet)], SINKS)
    now = local(23, 15)
    assert await router.deliveries(event(), now) == (("ding", local(7, 0, day=30)),)


def test_quiet_days_are_the_days_a_quiet_period_starts_on() -> None:
    # Friday 22:00 to Saturday 07:00 only (2026-11-27 is a Friday).
    quiet = QuietHours(time(22, 0), time(7, 0), SHANGHAI, days=frozenset({4}))
    assert quiet.release_at(local(23, 0, day=27)) == local(7, 0, day=28)
    assert quiet.release_at(local(3, 0, day=28)) == local(7, 0, day=28)
    assert quiet.release_at(local(23, 0, day=28)) is None
    assert quiet.release_at(local(3, 0, day=27)) is None


def test_back_to_back_whole_day_quiet_periods_release_when_the_last_one_ends() -> None:
    weekend = QuietHours(time(0, 0), time(0, 0), SHANGHAI, days=frozenset({5, 6}))
    saturday_noon = local(12, 0, day=28)
    assert weekend.release_at(saturday_noon) == local(0, 0, day=30)  # Monday 00:00


def test_quiet_hours_across_a_daylight_saving_change_end_at_local_wall_time() -> None:
    dublin = ZoneInfo("Europe/Dublin")
    quiet = QuietHours(time(22, 0), time(7, 0), dublin)
    # Night of 28 to 29 March 2026: clocks go from 01:00 GMT to 02:00 IST.
    now = datetime(2026, 3, 28, 23, 0, tzinfo=dublin)
    assert quiet.release_at(now) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


async def test_a_sink_reached_by_a_quiet_and_a_loud_route_goes_now() -> None:
    quiet = QuietHours(time(22, 0), time(7, 0), SHANGHAI)
    router = Router(
        [
            Route(("ding", "hook"), quiet_hours=quiet, continue_=True),
            Route(("hook",), to_states=frozenset({JobState.DEAD})),
        ],
        SINKS,
    )
    now = local(23, 0)
    assert dict(await router.deliveries(event(), now)) == {"ding": local(7, 0, day=30), "hook": now}


# --- silences ------------------------------------------------------------------------------


def silence(job_name: str = "nightly_.*", *, queue: str | None = None, sid: int = 1) -> Silence:
    return Silence(
        id=sid, job_name=job_name, queue=queue, starts_at=T0, ends_at=T0 + timedelta(hours=2)
    )


def active(*silences: Silence) -> SilenceSource:
    """A silence source holding these silences, answering with those active at the moment."""

    async def read(now: datetime) -> list[Silence]:
        return [s for s in silences if s.is_active(now)]

    return read


def test_an_active_silence_mutes_the_event_for_every_route() -> None:
    router = Router([Route(("ding",), continue_=True), Route(("slack",))], SINKS)
    decision = router.decide(event(), T0, [silence()])
    assert decision.plan == ()
    assert decision.silenced_by == silence()
    assert not decision.unrouted


async def test_a_silence_reads_from_its_source_and_stops_muting_when_it_ends() -> None:
    router = Router([], SINKS, silences=active(silence()))
    assert await router.deliveries(event(), T0 + timedelta(minutes=119)) == ()
    later = T0 + timedelta(hours=2)
    assert await sinks_of(router, event(), later) == list(SINKS)


async def test_a_routing_pass_records_what_it_silenced_and_what_no_sink_took() -> None:
    router = Router(
        [Route((), to_states=frozenset({JobState.SUCCESS}))],
        SINKS,
        silences=active(silence("nightly_.*", queue="etl")),
    )
    routing = await router.for_commit(T0)
    muted, quiet_success, loud = (
        event("nightly_etl"),
        event("report", to_state=JobState.SUCCESS),
        event("report"),
    )
    assert tuple(routing(muted)) == ()
    assert tuple(routing(quiet_success)) == ()
    assert [s for s, _ in routing(loud)] == list(SINKS)
    assert [e for e, _ in routing.silenced] == [muted]
    assert routing.unrouted == [quiet_success]


async def test_a_routing_pass_says_why_an_event_goes_where_it_goes() -> None:
    router = Router(
        [Route((), to_states=frozenset({JobState.SUCCESS})), Route(("ding",), queue="etl")],
        SINKS,
        silences=active(silence("nightly_.*", queue="etl")),
    )
    routing = await router.for_commit(T0)
    muted = routing(event("nightly_etl"))
    assert muted.silence == SilenceNote(1, T0 + timedelta(hours=2), "job_name=nightly_.* queue=etl")
    assert (muted.plan, muted.unrouted, muted.default) == ((), "", False)
    quiet = routing(event("report", to_state=JobState.SUCCESS))
    assert quiet.matched == ("#0 to_state=success",)
    assert quiet.unrouted == "matched route #0, which names no sinks"
    routed = routing(event("report"))
    assert routed.matched == ("#1 queue=etl",)
    assert routed.plan == (PlannedSink("ding", T0, route=1),)
    unmatched = routing(event("report", queue="adhoc"))
    assert unmatched.default and [p.route for p in unmatched.plan] == [None, None, None]


async def test_an_event_no_route_matches_without_default_sinks_says_so() -> None:
    router = Router([Route(("ding",), queue="etl")], SINKS, default_sinks=[])
    record = (await router.for_commit(T0))(event("adhoc_report", "adhoc"))
    assert tuple(record) == ()
    assert record.unrouted == (
        "no route matched: kind=transition queue=adhoc project=default"
        " job_name=adhoc_report, and default_sinks is empty"
    )


async def test_a_sink_held_by_quiet_hours_is_recorded_with_its_route_and_release() -> None:
    quiet = QuietHours(time(22, 0), time(7, 0), SHANGHAI)
    router = Router([Route(("ding",), queue="etl", quiet_hours=quiet)], SINKS)
    now = local(23, 15)
    record = (await router.for_commit(now))(event())
    morning = local(7, 0, day=30)
    assert record.plan == (PlannedSink("ding", morning, route=0, quiet_until=morning),)
    assert list(record) == [("ding", morning)]


# --- config ----------------------------------------------------------------------------------


def config(**extra: Any) -> dict[str, Any]:
    return {
        "dli": {"endpoint": "http://127.0.0.1:1", "project_id": "p1", "auth": {"type": "none"}},
        "queues": ["etl"],
        "sinks": [{"name": name, "type": "console"} for name in SINKS],
        **extra,
    }


ROUTES_YAML = """
routes:
  - match: {queue: "etl*", job_name: "nightly_.*", to_state: [Dead, killed]}
    sinks: [ding]
    continue: true
    quiet_hours: {start: 22:00, end: 07:00, timezone: Asia/Shanghai, days: [Mon, fri]}
  - match: {kind: [vanished]}
    sinks: [slack]
default_sinks: [hook]
"""


async def test_routes_from_yaml_build_a_router_that_applies_them() -> None:
    settings = parse_settings(config(**yaml.safe_load(ROUTES_YAML)), {})
    router = Router.from_settings(
        settings.routes, [s.name for s in settings.sinks], default_sinks=settings.default_sinks
    )
    assert await sinks_of(router, event("nightly_etl", "etl_prod")) == ["ding"]
    assert await sinks_of(router, event("adhoc_q", kind=EventKind.VANISHED, to_state=None)) == [
        "slack"
    ]
    assert await sinks_of(router, event("report", to_state=JobState.SUCCESS)) == ["hook"]
    monday_night = local(23, 0, day=30)  # 2026-11-30 is a Monday
    tuesday_morning = datetime(2026, 12, 1, 7, 0, tzinfo=SHANGHAI)
    assert await router.deliveries(event("nightly_x"), monday_night) == (("ding", tuesday_morning),)
    sunday_night = local(23, 0, day=29)
    assert await router.deliveries(event("nightly_x"), sunday_night) == (("ding", sunday_night),)


def test_routes_survive_the_check_config_round_trip_including_continue() -> None:
    settings = parse_settings(config(**yaml.safe_load(ROUTES_YAML)), {})
    text = render_effective(settings)
    assert "continue: true" in text and "continue_" not in text
    assert parse_settings(yaml.safe_load(text), {}) == settings


def test_the_reference_table_documents_the_continue_key_by_its_yaml_name() -> None:
    table = reference_table()
    assert "`routes[].continue`" in table
    assert "continue_" not in table


def test_every_routing_problem_is_reported_at_its_key_path() -> None:
    bad = config(
        routes=[
            {
                "match": {"job_name": "(unclosed", "kind": ["exploded"], "to_state": ["zombie"]},
                "sinks": ["ding", "pager"],
                "quiet_hours": {"start": "25:00", "end": "07:00", "timezone": "Mars/Olympus"},
            },
            {"sinks": ["slack"], "continu": True},
        ],
        default_sinks=["nobody"],
    )
    with pytest.raises(ConfigError) as caught:
        parse_settings(bad, {})
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "routes[0].match.job_name",
        "routes[0].match.kind[0]",
        "routes[0].match.to_state[0]",
        "routes[0].quiet_hours.start",
        "routes[0].quiet_hours.timezone",
        "routes[1].continu",
        "routes[0].sinks[1]",
        "default_sinks[0]",
    ]
    assert "no sink named 'pager' in sinks" in problems[6]


def test_a_route_to_an_unknown_sink_is_reported_even_when_the_config_is_otherwise_valid() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(routes=[{"sinks": ["ghost"]}]), {})
    assert caught.value.problems == ["routes[0].sinks[0]: no sink named 'ghost' in sinks"]


async def test_without_routes_the_settings_default_to_every_sink() -> None:
    settings = parse_settings(config(), {})
    assert settings.routes == [] and settings.default_sinks is None
    router = Router.from_settings(settings.routes, [s.name for s in settings.sinks])
    assert await sinks_of(router, event()) == list(SINKS)


def test_quiet_hours_that_never_end_are_refused() -> None:
    always = {"start": "00:00", "end": "00:00", "timezone": "UTC"}
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(routes=[{"sinks": ["ding"], "quiet_hours": always}]), {})
    (problem,) = caught.value.problems
    assert problem.startswith("routes[0].quiet_hours: start equal to end on every day")
    weekend = {**always, "days": ["sat", "sun"]}
    settings = parse_settings(config(routes=[{"sinks": ["ding"], "quiet_hours": weekend}]), {})
    assert settings.routes[0].quiet_hours is not None
