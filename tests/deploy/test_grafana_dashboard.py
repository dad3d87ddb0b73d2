"""The Grafana dashboard: well-formed panels, every query parsed by promtool, every metric real.

Grafana cannot run here, so the queries are checked the way Prometheus sees them: dashboard
variables are replaced by what Grafana would put there, each expression becomes a recording
rule, and `promtool check rules` parses the lot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import DEPLOY, exported_sample_names, metric_names, run_tool

DASHBOARD = DEPLOY / "dashboard.json"
VARIABLES = {
    "$__rate_interval": "2m",
    "$namespace": ".*",
    "$project": ".*",
    "$queue": ".*",
}
"""What Grafana substitutes: the rate interval, and the regex of the "All" option."""


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in _panels(dashboard) for target in panel["targets"]]


def _substitute(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown dashboard variable in {expr!r}"
    return expr


def _write_rules(path: Path, exprs: list[str]) -> None:
    rules = [{"record": f"dashboard:expr_{i}", "expr": _substitute(e)} for i, e in enumerate(exprs)]
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), "utf-8")


def test_the_dashboard_covers_jobs_transitions_polls_and_sinks(dashboard: dict[str, Any]) -> None:
    used = set().union(*(metric_names(expr) for expr in _exprs(dashboard)))
    assert {
        "dli_batch_jobs",
        "dli_batch_job_transitions_total",
        "dli_monitor_last_successful_poll_timestamp_seconds",
        "dli_monitor_poll_errors_total",
        "dli_monitor_notifications_total",
        "dli_monitor_outbox_pending",
        "dli_monitor_project_up",
    } <= used
    assert dashboard["uid"] == "dli-batch-monitor"


def test_every_query_of_a_queue_or_project_series_filters_and_groups_by_project(
    dashboard: dict[str, Any],
) -> None:
    for expr in _exprs(dashboard):
        if 'queue=~"$queue"' in expr:
            assert 'project=~"$project", queue=~"$queue"' in expr, expr
        if "by (" in expr and "queue" in expr.split("by (", 1)[1].split(")", 1)[0]:
            assert "by (project, queue" in expr, expr
    variables = {var["name"]: var for var in dashboard["templating"]["list"]}
    assert "$project" in variables["queue"]["definition"]


def test_every_panel_has_a_unique_id_a_place_and_queries_on_the_datasource_variable(
    dashboard: dict[str, Any],
) -> None:
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {var["name"] for var in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "project", "queue"} <= variables
    for panel in _panels(dashboard):
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        assert panel["title"] and panel["description"]
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))


def test_promtool_parses_every_panel_query(dashboard: dict[str, Any], tmp_path: Path) -> None:
    exprs = _exprs(dashboard)
    _write_rules(tmp_path / "dashboard.rules.yml", exprs)
    done = run_tool("promtool", "check", "rules", tmp_path / "dashboard.rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in done.stdout


def test_promtool_rejects_a_broken_panel_query(tmp_path: Path) -> None:
    _write_rules(tmp_path / "bad.rules.yml", ["sum(rate(dli_batch_jobs[$__rate_interval])"])
    done = run_tool("promtool", "check", "rules", tmp_path / "bad.rules.yml")
    assert done.returncode == 1
    assert "parse error" in done.stdout + done.stderr


def test_every_metric_the_dashboard_reads_is_exported_by_the_monitor(
    dashboard: dict[str, Any],
) -> None:
    used = set().union(*(metric_names(expr) for expr in _exprs(dashboard)))
    assert used - {"up"} <= exported_sample_names(), sorted(used - {"up"} - exported_sample_names())


STANDBY_KEEPS = {
    "dli_batch_jobs": [{"state": "running"}, {"state": "starting"}],
    "dli_batch_job_state": [{"job_name": "nightly_etl", "state": "dead"}],
    "dli_monitor_project_up": [{"region": "cn-north-4"}],
    "dli_monitor_last_successful_poll_timestamp_seconds": [{}],
    "dli_monitor_effective_poll_interval_seconds": [{}],
    "dli_monitor_outbox_pending": [{"sink": "ops"}],
}
"""Gauges a standby replica keeps exporting as it last saw them (the labels a panel needs)."""


def _series(metric: str, labels: dict[str, str], instance: str) -> str:
    common = {"namespace": "dli", "instance": instance, "project": "p", "queue": "q", **labels}
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in common.items()) + "}"


def test_a_standbys_stale_gauges_reach_no_panel(dashboard: dict[str, Any], tmp_path: Path) -> None:
    """A leader (instance a) and a standby (b) whose gauges say otherwise: every panel that reads
    such a gauge shows, per promtool, exactly what it shows from the leader alone."""
    inputs = [{"series": 'dli_monitor_leader{namespace="dli",instance="a"}', "values": "1x10"}]
    inputs.append({"series": 'dli_monitor_leader{namespace="dli",instance="b"}', "values": "0x10"})
    for metric, label_sets in STANDBY_KEEPS.items():
        for labels in label_sets:
            inputs.append({"series": _series(metric, labels, "a"), "values": "1x10"})
            stale = (
                "0x10" if metric == "dli_monitor_project_up" else "7x10"
            )  # a standby polls nothing
            inputs.append({"series": _series(metric, labels, "b"), "values": stale})
    reading = [e for e in _exprs(dashboard) if metric_names(e) & set(STANDBY_KEEPS)]
    assert len(reading) >= 8
    cases = []
    for expr in map(_substitute, reading):
        leader_only = expr.replace('{namespace=~".*"', '{instance="a", namespace=~".*"')
        assert leader_only != expr
        same = f"count(({expr}) != ({leader_only})) or vector(0)"
        cases.append(
            {"expr": same, "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": 0}]}
        )
        shown = f"count({expr}) > bool 0"
        cases.append(
            {"expr": shown, "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": 1}]}
        )
    unit = {
        "rule_files": [],
        "tests": [{"interval": "1m", "input_series": inputs, "promql_expr_test": cases}],
    }
    (tmp_path / "standby_test.yml").write_text(yaml.safe_dump(unit), encoding="utf-8")
    done = run_tool("promtool", "test", "rules", tmp_path / "standby_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
