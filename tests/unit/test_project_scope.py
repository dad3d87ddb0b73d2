"""DLI projects below the config: keys, health, metrics, messages, routes, silences and shards.

The single `dli:` form is project `default` (its state keys are bare queue names); a listed
project's are `<name>/<queue>`. Every series that names a queue names the project and region,
every message of a listed project names it, routes and silences can match on it, and the
probes judge each project on its own.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import generate_latest

from monitor.config import parse_settings
from monitor.health import Health
from monitor.metrics import Metrics
from monitor.models import Event, EventKind, Job, JobState, Notification, ProjectRef
from monitor.models_silence import Silence, SilenceError
from monitor.pipeline import job_id_for, owned_targets, shard_key
from monitor.routing import Route, Router
from monitor.shard import Shard, target_key
from monitor.sinks.content import MessageContext, build_message, console_link
from monitor.sinks.templates import MessageTemplates

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
PROD = ProjectRef("prod", "cn-north-4", listed=True)


def event(project: str = "default", region: str = "", queue: str = "etl", n: int = 1) -> Event:
    job = Job(id=f"job-{n}", state=JobState.DEAD, queue=queue, name="nightly", state_since=T0)
    target = queue if project == "default" else f"{project}/{queue}"
    return Event(
        f"ev{n}",
        EventKind.TRANSITION,
        target,
        job,
        JobState.RUNNING,
        JobState.DEAD,
        T0,
        project=project,
        region=region,
    )


# --- keys and shards -----------------------------------------------------------------------


def test_a_listed_projects_store_key_is_the_key_a_shard_hashes() -> None:
    assert PROD.key("etl") == "prod/etl" == target_key("prod", "etl")
    assert ProjectRef().key("etl") == "etl"  # the single form keeps bare queue names


def test_shards_hash_the_single_form_as_project_default_and_split_its_queues() -> None:
    data = {
        "dli": {"endpoint": "http://127.0.0.1:1", "project_id": "p", "auth": {"type": "none"}},
        "queues": [f"q{i}" for i in range(12)],
    }
    (single,) = parse_settings(data).projects
    assert shard_key(single, "q3") == "default/q3"
    parts = [owned_targets(single, Shard(i, 3)) for i in range(3)]
    assert sorted(t for part in parts for t in part) == sorted(single.targets)
    assert all(parts)
    assert owned_targets(single, Shard(0, 1)) == single.targets
    assert job_id_for(single) == "poll-cycle"


def test_a_whole_project_target_is_owned_by_the_shard_of_the_project_name() -> None:
    data = {
        "dli": [
            {
                "name": "lab",
                "endpoint": "http://127.0.0.1:1",
                "region": "lab",
                "project_id": "p",
                "auth": {"type": "none"},
                "queues": "*",
            }
        ]
    }
    (lab,) = parse_settings(data).projects
    assert shard_key(lab, "*") == "lab"
    assert job_id_for(lab) == "poll-cycle:lab"


# --- health ----------------------------------------------------------------------------------


def test_healthz_stays_up_while_one_project_polls_and_lists_the_failing_one() -> None:
    now = [T0]
    health = Health(stale_after_s=120, clock=lambda: now[0])
    health.declare("good", "cn-north-4")
    health.declare("bad", "eu-west-101")
    for _ in range(3):
        now[0] += timedelta(seconds=60)
        health.record_cycle(ok=True, at=now[0], project="good", region="cn-north-4")
        health.record_cycle(ok=False, at=now[0], project="bad", region="eu-west-101")
    healthy, reason = health.healthy()
    snapshot = health.snapshot()
    assert healthy and reason == "ok; not polling: bad"
    assert health.ready
    projects = snapshot["projects"]
    assert isinstance(projects, dict)
    assert projects["bad"]["up"] is False and projects["bad"]["consecutive_failed_cycles"] == 3
    assert projects["good"]["up"] is True and projects["good"]["region"] == "cn-north-4"
    now[0] += timedelta(seconds=121)
    assert health.healthy()[0] is False  # nobody polled for too long: now it is stale


def test_readiness_waits_for_every_projects_first_cycle_and_one_success() -> None:
    health = Health(stale_after_s=120, clock=lambda: T0)
    health.declare("a")
    health.declare("b")
    health.record_cycle(ok=True, at=T0, project="a")
    assert not health.ready  # b has not finished a cycle yet
    health.record_cycle(ok=False, at=T0, project="b")
    assert health.ready  # b cannot poll, and must not keep the pod unready forever
    only_failures = Health(stale_after_s=120, clock=lambda: T0)
    only_failures.record_cycle(ok=False, at=T0, project="a")
    assert not only_failures.ready


# --- metrics ---------------------------------------------------------------------------------


def test_every_queue_series_names_its_project_and_region() -> None:
    metrics = Metrics(version="1")
    metrics.declare(queues=["etl"], sinks=["hook"], project=PROD)
    metrics.observe_poll("etl", 0.2, ok=False, reason="auth", project=PROD)
    metrics.record_transition("etl", "running", "dead", project=PROD)
    metrics.observe_api_request("list_batches", "401", project=PROD)
    metrics.projects.observe_cycle(PROD, ok=False, at=T0)
    value = metrics.registry.get_sample_value
    at = {"project": "prod", "region": "cn-north-4"}
    assert value("dli_monitor_poll_errors_total", {**at, "queue": "etl", "reason": "auth"}) == 1
    assert value("dli_monitor_project_up", at) == 0
    assert value("dli_monitor_project_last_success_timestamp_seconds", at) == 0
    assert value(
        "dli_monitor_api_requests_total", {**at, "operation": "list_batches", "code": "401"}
    )
    text = generate_latest(metrics.registry).decode()
    queue_lines = [line for line in text.splitlines() if 'queue="' in line]
    assert queue_lines
    assert all('project="prod"' in line and 'region="cn-north-4"' in line for line in queue_lines)


def test_the_same_job_id_in_two_projects_counts_and_has_series_in_each() -> None:
    metrics = Metrics(version="1")
    job = Job(id="j1", state=JobState.RUNNING, queue="etl", name="twin")
    metrics.set_snapshot("etl", [job])
    metrics.set_snapshot("prod/etl", [job], project=PROD)
    value = metrics.registry.get_sample_value
    for project, region in (("default", "local"), ("prod", "cn-north-4")):
        labels = {"project": project, "region": region, "queue": "etl"}
        assert value("dli_batch_jobs", {**labels, "state": "running"}) == 1
        state = {**labels, "job_id": "j1", "job_name": "twin", "state": "running"}
        assert value("dli_batch_job_state", state) == 1


def test_the_shard_info_series_says_which_shard_this_is() -> None:
    metrics = Metrics(version="1")
    value = metrics.registry.get_sample_value
    assert value("dli_monitor_shard_info", {"shard": "0", "total_shards": "1"}) == 1
    metrics.projects.set_shard(2, 3)
    assert value("dli_monitor_shard_info", {"shard": "2", "total_shards": "3"}) == 1
    assert value("dli_monitor_shard_info", {"shard": "0", "total_shards": "1"}) is None


# --- messages --------------------------------------------------------------------------------


def test_a_listed_projects_message_names_project_and_region_and_links_its_console() -> None:
    context = dataclasses.replace(
        MessageContext(console_url="https://fallback"),
        console_urls={"prod": console_link("https://dli.eu-west-101.myhuaweicloud.com")},
    )
    message = build_message(Notification("s", (event("prod", "eu-west-101"),)), context)
    facts = {fact.label: fact.value for fact in message.facts}
    assert message.title == "DLI job nightly DEAD on prod · etl"
    assert facts["Project"] == "prod (eu-west-101)"
    assert message.link is not None and "region=eu-west-101" in message.link


def test_the_single_forms_message_reads_as_it_always_did() -> None:
    message = build_message(Notification("s", (event(),)), MessageContext(console_url="https://c"))
    assert message.title == "DLI job nightly DEAD on etl"
    assert "Project" not in {fact.label for fact in message.facts}
    assert message.link == "https://c"


def test_a_digest_across_projects_names_each_and_links_no_single_console() -> None:
    events = (event("prod", "r1", n=1), event("test", "r2", n=2))
    context = MessageContext(console_urls={"prod": "https://a", "test": "https://b"})
    message = build_message(Notification("s", events), context)
    assert any("on prod · etl" in line for line in message.lines)
    assert any("on test · etl" in line for line in message.lines)
    assert message.summary == ("prod · etl: running → dead: 1", "test · etl: running → dead: 1")
    assert message.link is None


def test_templates_see_the_project_and_its_region() -> None:
    templates = MessageTemplates(
        {"default": ("{{ project }}/{{ region }}: {{ event.project }}", "in {{ event.region }}")}
    )
    context = MessageContext().with_templates(templates)
    message = build_message(Notification("s", (event("prod", "eu-west-101"),)), context)
    assert message.title == "prod/eu-west-101: prod"
    assert message.body == "in eu-west-101"


def test_a_template_naming_the_project_passes_the_config_check() -> None:
    data = {
        "dli": {"endpoint": "http://127.0.0.1:1", "project_id": "p", "auth": {"type": "none"}},
        "queues": ["etl"],
        "sinks": [
            {
                "name": "chat",
                "type": "slack",
                "url": "https://hooks.slack.com/services/T/B/x",
                "templates": {"title": "{{ project }} {{ region }} {{ job.name }}"},
            }
        ],
    }
    assert parse_settings(data).sinks[0].name == "chat"


# --- routes and silences ---------------------------------------------------------------------


def test_a_route_matches_on_a_project_glob() -> None:
    router = Router(
        [Route(sinks=("eu",), project="*-eu"), Route(sinks=("bj",), project="prod-bj")],
        ["eu", "bj", "rest"],
        default_sinks=["rest"],
    )
    assert router.decide(event("prod-eu"), T0).plan == (("eu", T0),)
    assert router.decide(event("prod-bj"), T0).plan == (("bj", T0),)
    assert router.decide(event(), T0).plan == (("rest", T0),)


def test_a_silence_limited_to_a_project_mutes_only_that_projects_jobs() -> None:
    scope = Silence.scoped("etl*", "prod-*")
    assert scope == "prod-*/etl*"
    silence = Silence(id=1, job_name=".*", queue=scope, starts_at=T0, ends_at=T0 + timedelta(1))
    assert (silence.project_glob, silence.queue_glob) == ("prod-*", "etl*")
    assert silence.matches(event("prod-bj"), T0)
    assert not silence.matches(event("test"), T0)
    assert not silence.matches(event(), T0)
    assert not silence.matches(event("prod-bj", queue="adhoc"), T0)
    every_queue = Silence(1, ".*", T0, T0 + timedelta(1), queue=Silence.scoped(None, "default"))
    assert every_queue.matches(event(queue="adhoc"), T0)
    plain = Silence(id=2, job_name=".*", queue="etl", starts_at=T0, ends_at=T0 + timedelta(1))
    assert plain.project_glob is None and plain.matches(event("prod-bj"), T0)


@pytest.mark.parametrize("bad", ["", "a/b"])
def test_a_project_glob_must_be_non_empty_and_without_a_slash(bad: str) -> None:
    with pytest.raises(SilenceError):
        Silence.scoped("etl", bad)
