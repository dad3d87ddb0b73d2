"""`dli-monitor render` and `dli-monitor test-sink` as a user runs them, and the docs' samples.

`render` prints the exact body for every sink type without sending; `test-sink` posts a
marked test message over real sockets to the webhook receiver and the fake chat vendors and
reports each sink's outcome with the vendor's own error text (exit 1 when one failed). The
sample messages in docs/sinks.md must equal what `render` prints; refresh them with
`python -m tests.integration.test_preview_cli --update-docs`.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor import cli, preview
from monitor.codec import event_to_dict, webhook_payload
from monitor.config import load_settings, parse_settings
from tests.fakes.receiver import Receiver
from tests.fakes.vendors import DINGTALK_TOKEN, WECOM_KEY, FakeVendors

ENDPOINT = "https://dli.cn-north-4.myhuaweicloud.com"
DEAD_URL = "http://127.0.0.1:9/never-posted-{}?token=abcdef0123456789"
"""Nothing listens on port 9: a `render` that tried to send would fail loudly."""

SINKS: list[dict[str, Any]] = [
    {"name": "ops", "type": "webhook", "url": DEAD_URL.format("ops")},
    {"name": "stdout", "type": "console"},
    {"name": "sz", "type": "dingtalk", "url": DEAD_URL.format("sz"), "keywords": ["DLI"]},
    {"name": "lark", "type": "feishu", "url": DEAD_URL.format("lark"), "secret": "s3cr3t-lark"},
    {"name": "wx", "type": "wecom", "url": DEAD_URL.format("wx")},
    {"name": "dub", "type": "slack", "url": DEAD_URL.format("dub")},
    {"name": "ms", "type": "teams", "url": DEAD_URL.format("ms")},
    {"name": "dc", "type": "discord", "url": DEAD_URL.format("dc")},
    {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9"},
]

EXPECTED_SHAPE = {
    "ops": lambda body: body["job"]["name"] == "nightly_etl" and body["to_state"] == "dead",
    "sz": lambda body: body["msgtype"] == "markdown" and "nightly_etl" in body["markdown"]["text"],
    "lark": lambda body: body["msg_type"] == "interactive" and "sign" not in body,
    "wx": lambda body: "nightly_etl" in body["markdown"]["content"],
    "dub": lambda body: body["text"] == "DLI job nightly_etl DEAD on etl",
    "ms": lambda body: body["attachments"][0]["content"]["type"] == "AdaptiveCard",
    "dc": lambda body: body["embeds"][0]["title"] == "DLI job nightly_etl DEAD on etl",
    "am": lambda body: body[0]["labels"]["alertname"] == "DLIBatchJobFailed",
}


def write_config(tmp_path: Path, sinks: list[dict[str, Any]]) -> Path:
    config = {
        "dli": {"endpoint": ENDPOINT, "project_id": "p1", "auth": {"type": "none"}},
        "queues": ["etl"],
        "state": {"path": str(tmp_path / "state.db")},
        "sinks": sinks,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def run_in_thread(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The CLI runs its own event loop: give it a thread, so this loop keeps serving fakes."""
    code = await asyncio.to_thread(cli.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("sink", [s["name"] for s in SINKS if s["type"] != "console"])
def test_render_prints_the_json_body_each_sink_type_would_send(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sink: str
) -> None:
    config = write_config(tmp_path, SINKS)
    code, out, _ = run(capsys, "render", "--config", str(config), "--sink", sink)
    assert code == 0
    assert EXPECTED_SHAPE[sink](json.loads(out))


def test_render_prints_the_console_line_for_a_console_sink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, SINKS)
    code, out, _ = run(capsys, "render", "--config", str(config), "--sink", "stdout")
    assert code == 0
    assert out.startswith("2026-11-29T02:41:30Z  etl  nightly_etl (0a32…)  running → dead")


def test_render_of_the_sample_digest_counts_every_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, SINKS)
    argv = ["render", "--config", str(config), "--sink", "ops", "--event", "sample-digest"]
    code, out, _ = run(capsys, *argv)
    body = json.loads(out)
    assert code == 0
    assert body["kind"] == "digest"
    assert body["count"] == len(body["events"]) == 14


@pytest.mark.parametrize("form", ["stored", "webhook"])
def test_render_reads_an_event_from_a_json_file_in_stored_or_webhook_form(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    event = preview.sample_event()
    data = event_to_dict(event) if form == "stored" else webhook_payload(event, "p1")
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(data), encoding="utf-8")
    config = write_config(tmp_path, SINKS)
    argv = ["render", "--config", str(config), "--sink", "dub", "--event", str(event_file)]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert json.loads(out)["text"] == "DLI job nightly_etl DEAD on etl"


def test_render_of_an_unknown_sink_exits_2_listing_the_sinks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, SINKS[:2])
    code, out, err = run(capsys, "render", "--config", str(config), "--sink", "nope")
    assert code == 2
    assert out == ""
    assert "no sink named 'nope' (sinks: ops, stdout)" in err


def test_render_of_an_invalid_event_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event_file = tmp_path / "event.json"
    event_file.write_text('{"kind": "transition"}', encoding="utf-8")
    config = write_config(tmp_path, SINKS)
    argv = ["render", "--config", str(config), "--sink", "dub", "--event", str(event_file)]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "event.json" in err


def test_a_template_syntax_error_exits_2_with_its_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = {**SINKS[5], "templates": {"by_kind": {"transition": {"body": "{% if %}"}}}}
    config = write_config(tmp_path, [SINKS[0], sink])
    code, out, err = run(capsys, "render", "--config", str(config), "--sink", "dub")
    assert code == 2
    assert out == ""
    assert "sinks[1].templates.by_kind.transition.body: template syntax error on line 1" in err


def test_render_applies_the_sinks_templates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = {**SINKS[5], "templates": {"title": "[PROD] {{ job.name }} is {{ event.to_state }}"}}
    config = write_config(tmp_path, [sink])
    code, out, _ = run(capsys, "render", "--config", str(config), "--sink", "dub")
    assert code == 0
    assert json.loads(out)["text"] == "[PROD] nightly_etl is dead"


async def test_test_sink_reports_success_and_the_vendors_error_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Receiver() as receiver, FakeVendors() as vendors:
        vendors.dingtalk_secret = "SEC-test-dingtalk-secret"
        vendors.dingtalk_keywords = ("DLI",)
        sinks = [
            {"name": "ops", "type": "webhook", "url": receiver.url},
            {
                "name": "sz",
                "type": "dingtalk",
                "url": vendors.url("dingtalk"),
                "secret": "SEC-test-dingtalk-secret",
            },
            {"name": "wx", "type": "wecom", "url": vendors.url("wecom").replace(WECOM_KEY, "x")},
        ]
        config = write_config(tmp_path, sinks)
        code, out, _ = await run_in_thread(capsys, "test-sink", "--config", str(config))
        assert code == 1
        lines = out.splitlines()
        assert lines[0] == "ok      ops (webhook)"
        assert lines[1] == "ok      sz (dingtalk)"
        assert lines[2].startswith("FAILED  wx (wecom): errcode 93000: invalid webhook url")
        (hook,) = receiver.payloads()
        assert hook["job"]["name"] == preview.TEST_JOB_NAME
        assert hook["detail"] == preview.TEST_DETAIL
        (robot,) = vendors.received["dingtalk"]
        assert "TEST MESSAGE" in robot.json["markdown"]["text"]
        assert DINGTALK_TOKEN not in out


async def test_test_sink_for_one_sink_sends_only_to_it_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Receiver() as first, Receiver() as second:
        sinks = [
            {"name": "a", "type": "webhook", "url": first.url},
            {"name": "b", "type": "webhook", "url": second.url},
        ]
        config = write_config(tmp_path, sinks)
        argv = ["test-sink", "--config", str(config), "--sink", "b"]
        code, out, _ = await run_in_thread(capsys, *argv)
        assert (code, out) == (0, "ok      b (webhook)\n")
        assert first.received == []
        assert len(second.received) == 1


async def test_each_test_message_has_a_fresh_event_id(tmp_path: Path) -> None:
    async with Receiver() as receiver:
        config = write_config(tmp_path, [{"name": "ops", "type": "webhook", "url": receiver.url}])
        settings = load_settings(config)
        for _ in range(2):
            (outcome,) = await preview.send_test_messages(settings)
            assert outcome.ok
        ids = receiver.event_ids()
        assert len(set(ids)) == 2


async def test_test_sink_fires_and_resolves_a_test_alert_in_alertmanager(tmp_path: Path) -> None:
    async with Receiver() as receiver:
        alertmanager = receiver.url.removesuffix("/hook")
        sink = {"name": "am", "type": "alertmanager", "url": alertmanager}
        settings = load_settings(write_config(tmp_path, [sink]))
        (outcome,) = await preview.send_test_messages(settings)
        assert outcome.ok
        fired, resolved = receiver.payloads()
        assert fired[0]["labels"]["job_name"] == preview.TEST_JOB_NAME
        assert resolved[0]["labels"] == fired[0]["labels"]
        assert resolved[0]["endsAt"] < fired[0]["endsAt"]


# --- the samples in docs/sinks.md -----------------------------------------------------------

SINKS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "sinks.md"
SAMPLE_BLOCK = re.compile(
    r"<!-- sink-sample:(?P<key>[a-z-]+):start -->\n(?P<body>.*?)<!-- sink-sample:(?P=key):end -->",
    re.DOTALL,
)
DOC_SINKS: list[dict[str, Any]] = [
    {"name": "webhook", "type": "webhook", "url": DEAD_URL.format("webhook")},
    {"name": "console", "type": "console"},
    {"name": "dingtalk", "type": "dingtalk", "url": DEAD_URL.format("d"), "keywords": ["DLI"]},
    {"name": "feishu", "type": "feishu", "url": DEAD_URL.format("f")},
    {"name": "wecom", "type": "wecom", "url": DEAD_URL.format("w")},
    {"name": "slack", "type": "slack", "url": DEAD_URL.format("s")},
    {"name": "teams", "type": "teams", "url": DEAD_URL.format("t")},
    {"name": "discord", "type": "discord", "url": DEAD_URL.format("dc")},
    {
        "name": "alertmanager",
        "type": "alertmanager",
        "url": "http://127.0.0.1:9",
        "labels": {"team": "data"},
    },
]
"""One sink of each type, configured as the examples in docs/sinks.md (names are the types)."""


async def readme_samples() -> dict[str, str]:
    """Each sample block of docs/sinks.md as `render` prints it (the sample event; one digest)."""
    settings = parse_settings(
        {
            "dli": {
                "endpoint": ENDPOINT,
                "project_id": "48cc2c48765f481480c7db940d6409d1",
                "auth": {"type": "none"},
            },
            "queues": ["etl"],
            "sinks": DOC_SINKS,
        }
    )
    wanted = [(s["name"], s["name"], preview.SAMPLE) for s in DOC_SINKS]
    wanted.append(("dingtalk-digest", "dingtalk", preview.SAMPLE_DIGEST))
    blocks = {}
    for key, sink, event in wanted:
        body = await preview.render_body(settings, sink, event)
        fence = "text" if sink == "console" else "json"
        blocks[key] = f"```{fence}\n{body}```\n"
    return blocks


async def test_the_docs_sample_of_every_sink_is_what_render_prints() -> None:
    found = {m["key"]: m["body"] for m in SAMPLE_BLOCK.finditer(SINKS_PAGE.read_text("utf-8"))}
    expected = await readme_samples()
    assert set(found) == set(expected), "docs/sinks.md sample markers missing or unknown"
    stale = sorted(key for key in expected if found[key] != expected[key])
    assert stale == [], (
        "docs/sinks.md samples are stale; run "
        "`python -m tests.integration.test_preview_cli --update-docs`"
    )


def update_docs() -> None:
    """Rewrite every sample block of docs/sinks.md with what `render` prints now."""
    samples = asyncio.run(readme_samples())
    text = SINKS_PAGE.read_text("utf-8")

    def fill(match: re.Match[str]) -> str:
        key = match["key"]
        return f"<!-- sink-sample:{key}:start -->\n{samples[key]}<!-- sink-sample:{key}:end -->"

    SINKS_PAGE.write_text(SAMPLE_BLOCK.sub(fill, text), encoding="utf-8")


if __name__ == "__main__" and sys.argv[1:] == ["--update-docs"]:
    update_docs()
