"""Helpers for the deploy/ checks: paths, running a real tool, rendering the Kustomize base.

Every tool is found with `tests.conftest.require_tool`, so a check skips locally without the
tool and fails in CI (REQUIRE_TOOLS=1).
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.metrics import Metrics
from monitor.models import Job, JobState
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
README = ROOT / "README.md"


def run_tool(
    name: str, *args: str | Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a real tool (skipped/failed per `require_tool` when absent); never raises on rc."""
    binary = require_tool(name)
    return subprocess.run(
        [binary, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def render_kustomize() -> str:
    """`kubectl kustomize deploy/` as text; fails the test when it does not render."""
    done = run_tool("kubectl", "kustomize", DEPLOY)
    assert done.returncode == 0, done.stderr
    return done.stdout


def documents(text: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a multi-document text."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The single document of a kind."""
    found = [doc for doc in docs if doc.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def rule_groups() -> dict[str, Any]:
    """The `spec` of deploy/prometheusrule.yaml: a Prometheus rules file."""
    rule = yaml.safe_load((DEPLOY / "prometheusrule.yaml").read_text(encoding="utf-8"))
    spec = rule["spec"]
    assert isinstance(spec, dict)
    return spec


def alerts() -> list[dict[str, Any]]:
    """Every alerting rule of the PrometheusRule."""
    return [rule for group in rule_groups()["groups"] for rule in group["rules"] if "alert" in rule]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (lower case, punctuation dropped, - for space)."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def readme_anchors() -> set[str]:
    """Anchors of every heading in the README (lines inside fenced code blocks are not headings)."""
    anchors: set[str] = set()
    fenced = False
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)$", line)):
            anchors.add(github_anchor(match.group(1)))
    return anchors


METRIC_NAME = re.compile(r"\b(?:dli|up)(?:_[a-z0-9]+)*\b")


def metric_names(expr: str) -> set[str]:
    """The dli_* metric names (and `up`) an expression mentions."""
    names = set(METRIC_NAME.findall(expr))
    return {name for name in names if name == "up" or name.startswith("dli_")}


def exported_sample_names() -> set[str]:
    """Every sample name the monitor's registry exposes once each kind of metric was touched."""
    metrics = Metrics(version="0.0.0")
    metrics.declare(queues=["etl"], sinks=["ops"])
    metrics.observe_api_request("list_batches", "200")
    metrics.observe_poll("etl", 0.1, ok=True)
    metrics.record_transition("etl", "running", "dead")
    metrics.observe_notification("ops", "delivered")
    metrics.set_outbox_pending({"ops": 1})
    now = datetime.now(UTC)
    running = Job(id="j1", state=JobState.RUNNING, queue="etl", name="x", create_time=now)
    dead = Job(
        id="j2",
        state=JobState.DEAD,
        queue="etl",
        name="y",
        create_time=now,
        state_since=now,
        duration_ms=1000,
    )
    metrics.set_snapshot("etl", [running, dead])
    metrics.observe_finished(dead, "etl")
    text = generate_latest(metrics.registry).decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
