"""The docs site and the README front page: the site builds strict, and no link into it breaks.

The site is built once per session with Sphinx and MyST-Parser, as docs/development.md says,
with `-W --keep-going -n`: any warning fails the build, and a link to a page or heading that
does not exist is one. Then:
- every PrometheusRule runbook URL is the site's `html_baseurl` + `alerts.html#<alert name>`,
  and the built page has that anchor; the alerts table names every rule with its severity;
- the README stays a front page: under 250 lines, linking every docs page, and each of its own
  links (a file, a docs page, a heading in one, an image) exists.
"""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.deploy_support import ROOT, alerts

DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MAX_LINES = 250
LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site (HTML); the build itself fails on any warning."""
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", DOCS, out],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stderr + build.stdout
    return out


def anchors_of(page: Path) -> set[str]:
    """The element ids of a built HTML page."""
    return set(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (lower case, punctuation dropped, - for space)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def local_links(text: str) -> list[str]:
    """The targets of a Markdown text's links and images that stay in this repository."""
    targets = [match["target"] for match in LINK.finditer(text)]
    return [t for t in targets if not re.match(r"[a-z]+:", t)]


def test_the_site_builds_strict_with_every_page_and_the_images(site: Path) -> None:
    for page in DOCS.glob("*.md"):
        assert (site / page.with_suffix(".html").name).is_file(), page.name
    images = {path.name for path in (site / "_images").iterdir()}
    assert {"status-page.png"} <= images


def test_every_runbook_url_points_at_an_anchor_of_the_alerts_page(site: Path) -> None:
    base = runpy.run_path(str(DOCS / "conf.py"))["html_baseurl"]
    anchors = anchors_of(site / "alerts.html")
    rules = alerts()
    assert len(rules) >= 9
    for rule in rules:
        name = rule["alert"]
        url = rule["annotations"]["runbook_url"]
        assert url == f"{base}alerts.html#{name.lower()}", name
        assert name.lower() in anchors, f"docs/alerts.md has no section for {name}"


def test_the_alerts_table_lists_every_rule_with_its_severity_and_for() -> None:
    text = (DOCS / "alerts.md").read_text(encoding="utf-8")
    rows = {
        match["name"]: (match["severity"], match["for"])
        for match in re.finditer(
            r"^\| \[(?P<name>\w+)\]\(#\w+\) \| (?P<severity>\w+) \| *(?P<for>\w*) *\|", text, re.M
        )
    }
    wanted = {r["alert"]: (r["labels"]["severity"], r.get("for", "")) for r in alerts()}
    assert rows == wanted


def test_the_readme_is_a_front_page_under_250_lines() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines"


def test_the_readme_links_every_docs_page() -> None:
    linked = {t.split("#", 1)[0] for t in local_links(README.read_text(encoding="utf-8"))}
    pages = {f"docs/{page.name}" for page in DOCS.glob("*.md")}
    assert pages - linked == set()


def test_every_local_link_of_the_readme_exists(site: Path) -> None:
    text = README.read_text(encoding="utf-8")
    own = {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}
    broken = []
    for target in local_links(text):
        path, _, anchor = target.partition("#")
        if not path:
            ok = anchor in own
        elif path.startswith("docs/") and path.endswith(".md"):
            built = site / Path(path).relative_to("docs").with_suffix(".html")
            ok = built.is_file() and (not anchor or anchor in anchors_of(built))
        else:
            ok = (ROOT / path).exists()
        if not ok:
            broken.append(target)
    assert broken == []
    assert "docs/images/status-page.png" in text
    assert "docs/images/alert.png" in text
