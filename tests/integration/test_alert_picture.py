"""The README's picture of an alert: the Feishu card our sink would post, drawn and photographed.

The body is the real one: `preview.render_body` builds the docs' `feishu` sink (the same
code the daemon uses) and renders the built-in sample event (`nightly_etl`, `running → dead`,
3rd failure in a row, with a redacted log tail). `tests.alert_card` draws it as a Feishu chat
message (our own look-alike, not Feishu's renderer), and Debian's Chromium, driven by
Playwright as in `test_status_page.py`, loads the page at a chat-like 560 px width. Checked: no
console error, page error or script; the card shows the job, the transition, the streak, the
redacted log line and a console link to the body's URL. Every run leaves an element screenshot
of the message at `artifacts/alert.png`; `UPDATE_SCREENSHOT=1` also refreshes the README's
`docs/images/alert.png`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from monitor import preview
from monitor.config import parse_settings
from tests.alert_card import feishu_card_html
from tests.browser import assert_clean, launch_chromium, open_page
from tests.integration.test_preview_cli import DOC_SINKS, ENDPOINT

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "artifacts" / "alert.png"
README_IMAGE = REPO / "docs" / "images" / "alert.png"
MAX_PNG_BYTES = 150 * 1024
CONSOLE_LINK = re.compile(r"\[Open in DLI console\]\((?P<url>[^)\s]+)\)")


async def sample_body() -> dict[str, Any]:
    """What the docs' `feishu` sink posts for the sample event (as `render` prints it)."""
    feishu = [sink for sink in DOC_SINKS if sink["type"] == "feishu"]
    settings = parse_settings(
        {
            "dli": {"endpoint": ENDPOINT, "project_id": "p1", "auth": {"type": "none"}},
            "queues": ["etl"],
            "sinks": feishu,
        }
    )
    body: dict[str, Any] = json.loads(
        await preview.render_body(settings, feishu[0]["name"], preview.SAMPLE)
    )
    return body


def test_the_drawing_escapes_text_and_draws_only_the_markup_our_sink_emits() -> None:
    body = {
        "msg_type": "interactive",
        "card": {
            "header": {"title": {"tag": "plain_text", "content": "<b>x</b>"}, "template": "grey"},
            "elements": [
                {"tag": "markdown", "content": "**a<i>**: `c&d`\n[go](https://e.test/?a=1&b=2)"},
                {"tag": "hr"},
                {
                    "tag": "div",
                    "fields": [{"is_short": True, "text": {"tag": "lark_md", "content": "- f"}}],
                },
            ],
        },
    }
    page = feishu_card_html(body)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>a&lt;i&gt;</b>: <code>c&amp;d</code><br>" in page
    assert '<a href="https://e.test/?a=1&amp;b=2">go</a>' in page
    assert '<div class="short"><ul><li>f</li></ul></div>' in page and "<hr>" in page
    assert "<script" not in page and "http" not in page.replace("https://e.test", "")


@pytest.mark.parametrize(
    ("where", "value"),
    [("element", {"tag": "img", "img_key": "k"}), ("template", "rainbow")],
)
def test_the_drawing_refuses_what_it_does_not_know_instead_of_dropping_it(
    where: str, value: Any
) -> None:
    card: dict[str, Any] = {
        "header": {"title": {"tag": "plain_text", "content": "t"}, "template": "red"},
        "elements": [{"tag": "hr"}],
    }
    if where == "element":
        card["elements"].append(value)
    else:
        card["header"]["template"] = value
    with pytest.raises(ValueError, match="unknown"):
        feishu_card_html({"msg_type": "interactive", "card": card})


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (skips without them)."""
    async with launch_chromium() as launched:
        yield launched


async def test_the_readme_picture_shows_the_feishu_card_of_a_job_that_just_died(
    browser: Any, tmp_path: Path
) -> None:
    body = await sample_body()
    (url,) = {m["url"] for m in CONSOLE_LINK.finditer(json.dumps(body, ensure_ascii=False))}
    page_file = tmp_path / "alert.html"
    page_file.write_text(feishu_card_html(body), encoding="utf-8")

    page, _, watch = await open_page(browser, page_file.as_uri(), device_scale_factor=1)
    await page.set_viewport_size({"width": 560, "height": 900})
    message = page.locator("#alert")
    text = await message.inner_text()
    assert "DLI job nightly_etl DEAD on etl" in text
    assert "Transition: running \u2192 dead" in text
    assert "Streak: 3rd consecutive failure of nightly_etl" in text
    assert "INFO JdbcSource: connecting with password=***" in text
    link = message.get_by_role("link", name="Open in DLI console")
    assert await link.get_attribute("href") == url
    assert await message.locator("header").evaluate("e => getComputedStyle(e).backgroundColor") == (
        "rgb(229, 68, 62)"
    )  # the body's `template: red`

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    await message.screenshot(path=str(SCREENSHOT))
    png = SCREENSHOT.read_bytes()
    box = await message.bounding_box()
    print(f"alert.png: {len(png)} bytes, {box['width']:.0f}x{box['height']:.0f}")
    assert len(png) < MAX_PNG_BYTES
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        README_IMAGE.write_bytes(png)
    await assert_clean(page, watch)
    await page.context.close()
