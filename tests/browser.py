"""Browser tests' helpers: Debian's Chromium driven by Playwright, and what a page did wrong.

Playwright for Python (its wheel carries its driver; no browser is ever downloaded) drives
`/usr/bin/chromium`, headless, with the flags this machine needs: no sandbox (root), no GPU,
no QUIC, and nothing that reaches for Google's hosts on a closed network. Each launch gets a
fresh temporary profile from Playwright. `Watch` collects console errors and warnings, page
errors, dialogs, failed requests and 4xx/5xx answers; `CSP_PROBE` records CSP violations from
inside the page; `axe_violations` runs axe-core (`AXE_CORE_JS`: the path of axe.min.js, which
`.ci/run` fetches from the npm registry) in the page.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@dataclass
class Watch:
    """What a page said that it should not have: console errors, page errors, CSP violations,
    failed requests and 4xx/5xx answers."""

    problems: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        """Record the page's problems as they happen."""

        def console(message: Any) -> None:
            if message.type in ("error", "warning"):
                self.problems.append(f"console {message.type}: {message.text}")

        def answered(response: Any) -> None:
            if response.status >= 400:
                self.problems.append(f"HTTP {response.status}: {response.url}")

        page.on("console", console)
        page.on("dialog", lambda dialog: self.problems.append(f"dialog: {dialog.message}"))
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url}"))
        page.on("response", answered)


CSP_PROBE = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
    e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""
"""Injected by the browser (not the page) before any of the page runs: records CSP violations."""


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Any]:
    """The system Chromium, launched by Playwright; skips without either (fails under
    REQUIRE_TOOLS=1)."""
    chromium = require_tool("chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        if os.environ.get("REQUIRE_TOOLS") == "1":
            pytest.fail("playwright is required (REQUIRE_TOOLS=1) but not installed")
        pytest.skip("playwright not installed")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_FLAGS, headless=True
        )
        print(f"browser: {chromium}, Chromium {launched.version}")
        try:
            yield launched
        finally:
            await launched.close()


async def open_page(browser: Any, url: str, **context: Any) -> tuple[Any, Any, Watch]:
    """A fresh context and page at `url` (loaded), with its problems watched."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, **context)
    await ctx.add_init_script(CSP_PROBE)
    page = await ctx.new_page()
    watch = Watch()
    watch.attach(page)
    response = await page.goto(url, wait_until="load")
    return page, response, watch


async def assert_clean(page: Any, watch: Watch) -> None:
    """No console error or warning, page error, failed request, error answer or CSP violation."""
    assert watch.problems == []
    assert await page.evaluate("window.__csp") == []
    assert await page.locator("script").count() == 0


def axe_source() -> str:
    """axe-core's axe.min.js from `AXE_CORE_JS` (skips without it unless REQUIRE_TOOLS=1)."""
    path = os.environ.get("AXE_CORE_JS", "")
    if not path or not Path(path).is_file():
        if os.environ.get("REQUIRE_TOOLS") == "1":
            pytest.fail(f"AXE_CORE_JS must name axe.min.js (REQUIRE_TOOLS=1); got {path!r}")
        pytest.skip("axe-core not available (set AXE_CORE_JS to axe.min.js)")
    return Path(path).read_text(encoding="utf-8")


async def axe_violations(page: Any, source: str) -> list[dict[str, Any]]:
    """axe-core's violations on the page as loaded (evaluated by the browser, so the page's CSP
    does not apply to it); printed, all of them."""
    await page.evaluate(source)
    result = await page.evaluate("async () => (await axe.run(document)).violations")
    for violation in result:
        print(f"axe {violation['impact']}: {violation['id']} ({len(violation['nodes'])} nodes)")
    return list(result)
