"""Message templates: validated at config load, applied to every chat product, failing safe."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs

from monitor.config import ConfigError, DingTalkSinkSettings, SlackSinkSettings, parse_settings
from monitor.config.templates import TemplateSettings
from monitor.models import Notification
from monitor.preview import SAMPLE_NOW, sample_digest, sample_event
from monitor.sinks import dingtalk, discord, feishu, slack, teams, wecom
from monitor.sinks.content import MessageContext, build_message
from monitor.sinks.templates import MessageTemplates

ENDPOINT = "https://dli.cn-north-4.myhuaweicloud.com"

RENDERERS: dict[str, Callable[[Notification, MessageContext], dict[str, Any]]] = {
    "dingtalk": dingtalk.render,
    "wecom": wecom.render,
    "feishu": feishu.render,
    "slack": slack.render,
    "teams": teams.render,
    "discord": discord.render,
}


def _config(templates: object) -> dict[str, Any]:
    return {
        "dli": {"endpoint": ENDPOINT, "project_id": "p1", "auth": {"type": "none"}},
        "queues": ["etl"],
        "sinks": [
            {"name": "ops", "type": "console"},
            {
                "name": "chat",
                "type": "slack",
                "url": "https://hooks.slack.com/services/T0/B0/XXXXXXXXXXXXXXXX",
                "templates": templates,
            },
        ],
    }


def _problems(templates: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(_config(templates))
    return caught.value.problems


def _context(templates: MessageTemplates | None) -> MessageContext:
    return MessageContext.from_endpoint(ENDPOINT).at(SAMPLE_NOW).with_templates(templates)


def _single(**changes: Any) -> Notification:
    return Notification(sink="chat", events=(replace(sample_event(), **changes),))


# --- config --------------------------------------------------------------------------------


def test_a_template_syntax_error_is_a_config_error_with_its_key_path() -> None:
    problems = _problems({"by_kind": {"transition": {"title": "{{ job.name }"}}})
    assert len(problems) == 1
    assert problems[0].startswith("sinks[1].templates.by_kind.transition.title: template syntax")


def test_an_unknown_template_name_is_a_config_error_naming_it() -> None:
    (problem,) = _problems({"body": "{{ jobb.name }} died"})
    assert problem.startswith("sinks[1].templates.body: unknown template variable jobb")


def test_an_unknown_event_kind_under_by_kind_is_reported_with_the_known_ones() -> None:
    (problem,) = _problems({"by_kind": {"transiton": {"title": "x"}}})
    assert problem.startswith("sinks[1].templates.by_kind.transiton: input should be 'transition'")
    assert problem.endswith("'recovered' or 'digest'")


def test_templates_are_not_accepted_on_a_console_sink() -> None:
    config = _config(None)
    config["sinks"][0]["templates"] = {"title": "x"}
    with pytest.raises(ConfigError) as caught:
        parse_settings(config)
    assert caught.value.problems == ["sinks[0].templates: unknown key"]


def test_valid_templates_load_into_slots_by_kind_and_default() -> None:
    settings = parse_settings(
        _config(
            {"title": "T {{ job.name }}", "by_kind": {"digest": {"body": "{{ digest.count }}"}}}
        )
    )
    entry = settings.sinks[1]
    assert isinstance(entry, SlackSinkSettings)
    templates = entry.templates
    assert isinstance(templates, TemplateSettings)
    assert templates.as_mapping() == {
        "default": ("T {{ job.name }}", None),
        "digest": (None, "{{ digest.count }}"),
    }


# --- applying ------------------------------------------------------------------------------


def test_a_title_template_replaces_only_the_title() -> None:
    templates = MessageTemplates(
        {"default": ("[PROD] {{ default_title }} ({{ event.ago }})", None)}
    )
    builtin = build_message(_single(), _context(None))
    message = build_message(_single(), _context(templates))
    assert message.title == "[PROD] DLI job nightly_etl DEAD on etl (2m0s ago)"
    assert message.facts == builtin.facts
    assert message.body == ""


def test_the_kind_slot_wins_over_the_default_and_the_missing_part_falls_back() -> None:
    templates = MessageTemplates(
        {
            "default": ("default title", "default body"),
            "transition": ("{{ job.name }} {{ event.transition }}", None),
        }
    )
    message = build_message(_single(), _context(templates))
    assert message.title == "nightly_etl running → dead"
    assert message.body == "default body"


def test_a_body_template_replaces_facts_and_logs_and_keeps_the_console_link() -> None:
    templates = MessageTemplates(
        {"default": (None, "{{ job.owner }}: {{ job.log_tail | last }} (#{{ event.streak }})")}
    )
    message = build_message(_single(), _context(templates))
    assert message.facts == ()
    assert message.log_lines == ()
    assert message.body == (
        "bob: YARN Diagnostics: User class threw exception: java.lang.OutOfMemoryError (#3)"
    )
    assert message.link is not None


def test_digests_use_only_the_digest_slot() -> None:
    digest = Notification(sink="chat", events=sample_digest())
    plain = MessageTemplates({"default": ("single {{ job.name }}", "single body")})
    assert build_message(digest, _context(plain)) == build_message(digest, _context(None))
    templates = MessageTemplates(
        {"digest": ("{{ digest.count }} events, {{ digest.failures }} failed", None)}
    )
    assert build_message(digest, _context(templates)).title == "14 events, 10 failed"


def test_a_digest_template_can_list_every_event() -> None:
    body = "{% for item in digest.events %}{{ item.job.name }};{% endfor %}"
    digest = Notification(sink="chat", events=sample_digest())
    message = build_message(digest, _context(MessageTemplates({"digest": (None, body)})))
    assert message.body.count(";") == 14
    assert message.lines == ()
    assert message.more == 0


def test_log_lines_reach_templates_redacted() -> None:
    job = replace(sample_event().job, log_tail=("connecting with password=hunter2",))
    templates = MessageTemplates({"default": (None, "{{ job.log_tail | join('|') }}")})
    message = build_message(_single(job=job), _context(templates))
    assert "hunter2" not in message.body
    assert "password=***" in message.body


def test_api_text_cannot_smuggle_mentions_through_a_template() -> None:
    event = sample_event()
    job = replace(event.job, name='<!channel> <at user_id="all"></at>')
    templates = MessageTemplates({"default": ("{{ job.name }}", "{{ job.name }}")})
    body = slack.render(_single(job=job), _context(templates))
    text = json.dumps(body, ensure_ascii=False)
    assert "<!channel>" not in text
    assert "<at" not in text


def test_a_failing_template_falls_back_to_the_built_in_message_and_logs_once() -> None:
    templates = MessageTemplates({"default": ("{{ job.nmae }}", "{{ event.nope }}")})
    builtin = build_message(_single(), _context(None))
    with capture_logs() as logs:
        first = build_message(_single(), _context(templates))
        second = build_message(_single(), _context(templates))
    assert first == builtin
    assert second == builtin
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert sorted(entry["part"] for entry in warnings) == ["body", "title"]
    assert all(entry["sink"] == "chat" and entry["slot"] == "transition" for entry in warnings)


def test_the_sandbox_refuses_reaching_into_python_internals() -> None:
    templates = MessageTemplates(
        {"default": ("{{ ''.__class__.__mro__[1].__subclasses__() }}", None)}
    )
    with capture_logs():
        message = build_message(_single(), _context(templates))
    assert message.title == "DLI job nightly_etl DEAD on etl"


def test_an_unknown_slot_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown template slot"):
        MessageTemplates({"died": ("x", None)})


@pytest.mark.parametrize("product", sorted(RENDERERS))
def test_every_chat_product_sends_the_templated_title_and_body(product: str) -> None:
    templates = MessageTemplates(
        {"transition": ("ALARM {{ job.name }}", "Call {{ job.owner }} about {{ job.queue }}")}
    )
    payload = RENDERERS[product](_single(), _context(templates))
    text = json.dumps(payload, ensure_ascii=False)
    assert "ALARM nightly_etl" in text
    assert "Call bob about etl" in text
    assert "application_1700000000000_0042" not in text  # the built-in facts are replaced


def test_the_documented_template_example_loads_and_renders() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "sinks.md").read_text("utf-8")
    section = page.split("## Message templates", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (sink,) = yaml.safe_load(example)
    config = _config(None)
    config["sinks"][1] = {**sink, "url": "https://oapi.dingtalk.com/robot/send?access_token=x1"}
    settings = parse_settings(config)
    entry = settings.sinks[1]
    assert isinstance(entry, DingTalkSinkSettings)
    assert entry.templates is not None
    templates = MessageTemplates(entry.templates.as_mapping())
    text = dingtalk.render(_single(), _context(templates), ["DLI"])["markdown"]["text"]
    assert text.startswith("#### [PROD] DLI job nightly_etl DEAD on etl\n\n**nightly_etl** running")
    assert "3rd consecutive failure of nightly_etl" in text
