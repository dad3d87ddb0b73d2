"""requirements/audit.py: OSV ECOSYSTEM range semantics, the ignore file, the PyPI merge, and
the audit of the committed pins against the committed advisories."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_audit() -> Any:
    """requirements/audit.py as a module (requirements/ is no package)."""
    spec = importlib.util.spec_from_file_location("req_audit", ROOT / "requirements" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


audit = _load_audit()
TODAY = dt.date(2026, 6, 1)


def advisory(events: list[dict[str, str]], versions: list[str] | None = None, **extra: Any) -> Any:
    """A synthetic advisory with one ECOSYSTEM range."""
    record = {
        "id": "PYSEC-0000-1",
        "aliases": ["CVE-0000-1"],
        "summary": "synthetic",
        "ranges": [{"type": "ECOSYSTEM", "events": events}],
        "versions": versions or [],
    }
    return {**record, **extra}


INTRODUCED_FIXED = [{"introduced": "1.2"}, {"fixed": "1.5"}]


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("1.1.9", False),
        ("1.2", True),
        ("1.2.0", True),
        ("1.4.99", True),
        ("1.5", False),
        ("1.5.0.post1", False),
        ("2.0", False),
    ],
)
def test_introduced_is_inclusive_and_fixed_exclusive(version: str, affected: bool) -> None:
    assert audit.is_affected(version, advisory(INTRODUCED_FIXED)) is affected


def test_introduced_zero_means_every_release_before_the_fix() -> None:
    record = advisory([{"introduced": "0"}, {"fixed": "3.0"}])
    assert audit.is_affected("0.0.1", record)
    assert audit.is_affected("2.9", record)
    assert not audit.is_affected("3.0", record)


def test_an_open_range_affects_everything_from_its_introduction() -> None:
    record = advisory([{"introduced": "2.0"}])
    assert not audit.is_affected("1.9", record)
    assert audit.is_affected("99.0", record)


def test_last_affected_is_inclusive() -> None:
    record = advisory([{"introduced": "0"}, {"last_affected": "2.4"}])
    assert audit.is_affected("2.4", record)
    assert audit.is_affected("2.4.0", record)
    assert not audit.is_affected("2.4.1", record)
    assert not audit.is_affected("2.4.post1", record)


def test_events_are_ordered_by_version_not_by_position() -> None:
    record = advisory([{"fixed": "1.5"}, {"introduced": "1.2"}])
    assert audit.is_affected("1.3", record)
    assert not audit.is_affected("1.6", record)


def test_several_ranges_in_one_advisory_are_a_union() -> None:
    record = advisory(INTRODUCED_FIXED)
    record["ranges"].append(
        {"type": "ECOSYSTEM", "events": [{"introduced": "2.0"}, {"fixed": "2.0.3"}]}
    )
    assert [audit.is_affected(v, record) for v in ("1.3", "1.7", "2.0.2", "2.0.3")] == [
        True,
        False,
        True,
        False,
    ]


def test_one_range_with_two_introductions() -> None:
    events = [{"introduced": "0"}, {"fixed": "1.0"}, {"introduced": "2.0"}, {"fixed": "2.1"}]
    record = advisory(events)
    assert [audit.is_affected(v, record) for v in ("0.9", "1.5", "2.0.5", "2.1")] == [
        True,
        False,
        True,
        False,
    ]


def test_pre_releases_order_before_their_release() -> None:
    record = advisory([{"introduced": "2.0"}, {"fixed": "2.3"}])
    assert not audit.is_affected("2.0rc1", record)  # before the introduction
    assert audit.is_affected("2.3rc1", record)  # before the fix
    assert audit.is_affected("2.3.0b2", record)
    assert not audit.is_affected("2.3", record)


def test_a_fix_in_a_pre_release_fixes_the_release_too() -> None:
    record = advisory([{"introduced": "0"}, {"fixed": "5.2b1"}])
    assert audit.is_affected("5.2a3", record)
    assert not audit.is_affected("5.2b1", record)
    assert not audit.is_affected("5.2", record)


def test_an_explicit_versions_list_matches_equal_releases_only() -> None:
    record = advisory([], versions=["1.0", "1.4.2"])
    assert audit.is_affected("1.0.0", record)  # PEP 440: 1.0 == 1.0.0
    assert audit.is_affected("1.4.2", record)
    assert not audit.is_affected("1.4.3", record)
    assert not audit.is_affected("1.0.post1", record)


def test_git_ranges_are_not_ecosystem_ranges() -> None:
    record = advisory([])
    record["ranges"] = [{"type": "GIT", "events": [{"introduced": "0"}, {"fixed": "abc123"}]}]
    assert not audit.is_affected("1.0", record)


def test_an_unparseable_bound_names_the_advisory() -> None:
    with pytest.raises(audit.AuditError, match="PYSEC-0000-1"):
        audit.is_affected("1.0", advisory([{"introduced": "2019-09-12"}]))


def test_find_matches_canonical_names_and_skips_packages_not_in_the_data() -> None:
    packages = {"py-yaml-ish": [advisory([{"introduced": "0"}, {"fixed": "2.0"}])]}
    pins = [("Py_Yaml.Ish", "1.0"), ("not-in-data", "1.0"), ("py-yaml-ish", "2.0")]
    findings = audit.find(pins, packages)
    assert [(f.package, f.version) for f in findings] == [("Py_Yaml.Ish", "1.0")]


def test_fixes_after_lists_the_fixes_above_the_pin() -> None:
    record = advisory([{"introduced": "0"}, {"fixed": "1.5"}])
    record["ranges"].append(
        {"type": "ECOSYSTEM", "events": [{"introduced": "2.0"}, {"fixed": "2.2"}]}
    )
    assert audit.fixes_after("2.1", record) == ["2.2"]
    assert audit.fixes_after("1.0", record) == ["1.5", "2.2"]


# --- the ignore file ---------------------------------------------------------------------------


def write_ignores(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "audit-ignore.txt"
    path.write_text(text)
    return path


def test_the_committed_ignore_file_parses() -> None:
    audit.read_ignores(ROOT / "requirements" / "audit-ignore.txt")


@pytest.mark.parametrize(
    "line", ["PYSEC-0000-1", "PYSEC-0000-1 2026-07-01", "PYSEC-0000-1 soon because reasons"]
)
def test_an_ignore_needs_an_expiry_and_a_reason(tmp_path: Path, line: str) -> None:
    path = write_ignores(tmp_path, f"# header\n\n{line}\n")
    with pytest.raises(audit.AuditError, match=r"audit-ignore.txt:3"):
        audit.read_ignores(path)


def findings_for(version: str = "1.3") -> list[Any]:
    return audit.find([("pkg", version)], {"pkg": [advisory(INTRODUCED_FIXED)]})


def test_an_ignore_hides_a_finding_through_its_expiry_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ignores = audit.read_ignores(
        write_ignores(tmp_path, "CVE-0000-1 2026-06-01 only the CLI is affected\n")
    )
    assert audit.report(findings_for(), ignores, TODAY) == 0
    assert "ignored pkg 1.3: PYSEC-0000-1" in capsys.readouterr().out


def test_an_expired_ignore_no_longer_hides_the_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ignores = audit.read_ignores(write_ignores(tmp_path, "PYSEC-0000-1 2026-05-31 was fine\n"))
    assert audit.report(findings_for(), ignores, TODAY) == 1
    out = capsys.readouterr().out
    assert "VULNERABLE pkg 1.3: PYSEC-0000-1 (CVE-0000-1), fixed in 1.5" in out
    assert "ignore expired 2026-05-31" in out


def test_an_ignore_of_another_advisory_hides_nothing(tmp_path: Path) -> None:
    ignores = audit.read_ignores(write_ignores(tmp_path, "PYSEC-9999-9 2027-01-01 other\n"))
    assert audit.report(findings_for(), ignores, TODAY) == 1


def test_the_exit_status() -> None:
    data = {"packages": {"pkg": [advisory(INTRODUCED_FIXED)]}}
    assert audit.audit(data, [("pkg", "1.5")], [], TODAY) == 0
    assert audit.audit(data, [("pkg", "1.3")], [], TODAY) == 1
    assert audit.audit(data, [("pkg", "1.5"), ("never-looked-up", "1.0")], [], TODAY) == 1


# --- merging PyPI's "vulnerabilities" ----------------------------------------------------------


def pypi_entry(ident: str, aliases: list[str], fixed_in: list[str]) -> dict[str, Any]:
    return {
        "id": ident,
        "aliases": aliases,
        "details": "d\nmore",
        "fixed_in": fixed_in,
        "summary": None,
        "withdrawn": None,
    }


def test_a_pypi_entry_affects_up_to_its_first_fix_above_the_latest_release() -> None:
    record = audit.pypi_record(pypi_entry("GHSA-x", [], ["1.9.3", "3.0b1"]), "2.5")
    assert audit.is_affected("2.5", record)
    assert audit.is_affected("1.9.3", record)  # a backport branch: reported, conservatively
    assert not audit.is_affected("3.0", record)
    assert record["summary"] == "d"


def test_pypi_entries_merge_without_duplicates() -> None:
    records = [advisory([{"introduced": "0"}, {"fixed": "1.5"}])]
    entries = [pypi_entry("GHSA-dup", ["CVE-0000-1"], []), pypi_entry("GHSA-new", [], [])]
    assert audit.merge_pypi(records, entries, "2.0") == 2
    assert [r["id"] for r in records] == ["PYSEC-0000-1", "GHSA-new"]
    assert audit.is_affected("2.0", records[0])  # PyPI says the latest release is affected
    assert audit.merge_pypi(records, entries, "2.0") == 0


def test_a_pypi_record_no_longer_listed_is_closed_at_the_new_latest_release() -> None:
    records: list[Any] = []
    audit.merge_pypi(records, [pypi_entry("GHSA-new", [], [])], "2.0")
    assert audit.merge_pypi(records, [], "2.1") == 1
    assert audit.is_affected("2.0.9", records[0])
    assert not audit.is_affected("2.1", records[0])


def test_refresh_records_the_latest_releases_and_the_unreachable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    projects = {
        "pkg": {"info": {"version": "2.0"}, "vulnerabilities": [pypi_entry("GHSA-new", [], [])]}
    }
    data: dict[str, Any] = {"packages": {}}
    audit.refresh(data, [("pkg", "2.0"), ("gone", "1.0")], projects.get)
    assert [r["id"] for r in data["packages"]["pkg"]] == ["GHSA-new"]
    assert data["sources"]["pypi_json"]["latest"] == {"pkg": "2.0"}
    assert data["sources"]["pypi_json"]["unreachable"] == ["gone"]
    assert "1 advisory records added" in capsys.readouterr().out


# --- the committed data ------------------------------------------------------------------------


def test_the_committed_pins_pass_the_audit(capsys: pytest.CaptureFixture[str]) -> None:
    assert audit.main([]) == 0, capsys.readouterr().out
    assert "0 finding(s) not ignored" in capsys.readouterr().out


def test_every_pinned_package_was_looked_up_and_every_bound_parses() -> None:
    data = audit.load_data()
    for name, version in audit.read_pins():
        assert name in data["packages"], name
        for record in data["packages"][name]:
            audit.is_affected(version, record)
