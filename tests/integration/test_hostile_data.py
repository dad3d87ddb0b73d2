"""Hostile data from the API goes through whole: the simulator serves it, the monitor parses,
stores and delivers it, and what leaves is bounded and inert.

Job names and owners carrying HTML, Markdown, mentions, control characters and 10,000
characters; log lines of a megabyte; the same id on two pages with different states; bytes
that are not valid JSON text. Every chat product's rendering is checked for raw tags and control
characters, and the webhook payload for the bounds.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime

import pytest

from monitor.dli.parse import MAX_LOG_LINE, MAX_TEXT
from monitor.models import Event, EventKind, Job, Notification
from monitor.sinks import dingtalk, discord, feishu, slack, teams, wecom
from monitor.sinks.content import MessageContext
from tests.conftest import Harness

NASTY = (
    "<script>alert(1)</script> <at id=all></at> @all **bold** [click](http://evil.example)"
    " \x07\x1b[31mred\x1b[0m\u202eevil\r\nsecond line "
)
LONG_NAME = NASTY + "x" * 10_000
HUGE_LOG = "stderr: " + "y" * 1_000_000 + " password=hunter2"

RENDER = {
    "dingtalk": dingtalk.render,
    "wecom": wecom.render,
    "feishu": feishu.render,
    "slack": slack.render,
    "teams": teams.render,
    "discord": discord.render,
}


def control_characters(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c)[0] == "C" and c not in "\n"]


async def test_hostile_names_owners_and_logs_arrive_bounded_and_clean(harness: Harness) -> None:
    await harness.cycle()
    job = harness.world.add_job(queue="etl", name=LONG_NAME, owner=NASTY, state="running")
    harness.world.append_log(job.id, HUGE_LOG)
    harness.world.set_state(job.id, "dead", log_line=NASTY)
    harness.clock.advance(30)
    report = await harness.cycle()
    assert report.ok
    (payload,) = harness.receiver.payloads()
    data = payload["job"]
    assert len(data["name"]) <= MAX_TEXT and data["name"].startswith("<script>")
    assert all(len(line) <= MAX_LOG_LINE for line in data["log_tail"])
    assert "hunter2" not in json.dumps(payload)
    for text in (data["name"], data["owner"], *data["log_tail"]):
        assert control_characters(text) == []


def hostile_event() -> Event:
    job = Job(
        id="0c4f0000-aaaa",
        state=__import__("monitor.models").models.JobState.DEAD,
        queue="etl<b>",
        name="<script>alert(1)</script> <at id=all></at> @all [x](http://evil.example)",
        owner="<img src=x onerror=alert(1)>",
        log_tail=('<at user_id="all">hi</at> ```breakout``` <script>',),
    )
    from monitor.models import JobState

    return Event(
        "e" * 32,
        EventKind.TRANSITION,
        "etl",
        job,
        JobState.RUNNING,
        JobState.DEAD,
        datetime(2026, 11, 30, tzinfo=UTC),
    )


PLAIN_TEXT = {
    "dingtalk": [("markdown", "title")],
    "feishu": [("card", "header", "title", "content")],
    "slack": [("blocks", 0, "text", "text")],
    "discord": [("embeds", 0, "title")],
}
"""Fields each product shows as plain text (a notification title, a header): tags there are
inert, so they are left as they came."""


@pytest.mark.parametrize("product", sorted(RENDER))
def test_no_chat_product_receives_a_live_tag_or_link_from_job_data(product: str) -> None:
    context = MessageContext.from_endpoint("https://dli.cn-north-4.myhuaweicloud.com")
    body = RENDER[product](Notification("chat", (hostile_event(),)), context)
    for path in PLAIN_TEXT.get(product, []):
        holder = body
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = "(plain text)"
    rich = json.dumps(body, ensure_ascii=False)
    for escaped in ("\\\\<", "\\\\[", "\\\\]"):  # a backslash-escaped bracket is inert
        rich = rich.replace(escaped, "")
    parts = rich.split("```")[0::2]  # code blocks are inert too
    links = () if product == "slack" else ("](http://evil",)  # mrkdwn has no [text](url)
    for live in ("<script>", "<at id=all>", '<at user_id=\\"all\\">', "<img src=x", *links):
        assert all(live not in part for part in parts), (product, live)


async def test_the_same_id_with_two_states_on_two_pages_is_one_job_and_no_double_event(
    harness: Harness,
) -> None:
    harness.overrides["poll"] = {"interval": "30s", "mode": "full"}
    for index in range(12):
        harness.world.add_job(queue="etl", name=f"r{index}", state="running")
    await harness.cycle()
    rows = [
        {"id": "11111111-2222-3333-4444-555555555555", "state": "running", "queue": "etl"},
        {"id": "11111111-2222-3333-4444-555555555555", "state": "dead", "queue": "etl"},
    ]
    body = json.dumps({"from": 0, "total": 2, "sessions": rows})
    harness.world.faults.malformed("list_batches", body=body, count=3)
    harness.clock.advance(30)
    report = await harness.cycle()
    assert not report.ok  # duplicate ids that do not add up: an inconsistent listing
    assert harness.receiver.payloads() == []
