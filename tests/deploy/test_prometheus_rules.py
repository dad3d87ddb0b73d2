"""The PrometheusRule's alerts: promtool accepts them, its unit tests cover every alert firing
and not firing, every alert has its annotations (tests/docs/test_docs_site.py checks that each
runbook anchor exists), and every metric it reads is one the monitor exports.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.deploy.deploy_support import (
    alerts,
    exported_sample_names,
    metric_names,
    rule_groups,
    run_tool,
)

UNIT_TESTS = Path(__file__).resolve().parent / "alerts_test.yml"


def _rules_dir(tmp_path: Path) -> Path:
    """rules.yml (the PrometheusRule's spec) next to a copy of the unit tests."""
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rule_groups()), encoding="utf-8")
    shutil.copy(UNIT_TESTS, tmp_path / "alerts_test.yml")
    return tmp_path


def test_promtool_check_rules_accepts_the_rule_groups(tmp_path: Path) -> None:
    rules = _rules_dir(tmp_path) / "rules.yml"
    done = run_tool("promtool", "check", "rules", rules)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


def test_promtool_unit_tests_pass_for_every_alert(tmp_path: Path) -> None:
    done = run_tool("promtool", "test", "rules", "alerts_test.yml", cwd=_rules_dir(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_unit_tests_fail_when_an_alert_threshold_changes(tmp_path: Path) -> None:
    groups = rule_groups()
    for group in groups["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "DliBatchJobsStuckStarting":
                rule["for"] = "10m"
    _rules_dir(tmp_path)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(groups), encoding="utf-8")
    done = run_tool("promtool", "test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert done.returncode == 1
    assert "DliBatchJobsStuckStarting" in done.stdout + done.stderr


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_does_not() -> None:
    unit = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))
    cases = [case for test in unit["tests"] for case in test.get("alert_rule_test", [])]
    for alert in alerts():
        name = alert["alert"]
        own = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in own), f"{name} is never expected to fire"
        assert any(not case["exp_alerts"] for case in own), f"{name} never expected silent"


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_url() -> None:
    for alert in alerts():
        name = alert["alert"]
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        annotations = alert["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert annotations["runbook_url"].endswith(f"#{name.lower()}"), name


def test_every_metric_the_rules_read_is_exported_by_the_monitor() -> None:
    exported = exported_sample_names()
    used = set().union(*(metric_names(alert["expr"]) for alert in alerts()))
    assert "dli_batch_job_transitions_total" in used
    assert used - {"up"} <= exported, sorted(used - {"up"} - exported)
