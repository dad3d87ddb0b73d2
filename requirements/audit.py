"""Audit the pinned requirements against known vulnerability advisories.

Usage::

    python3 requirements/audit.py                      # CI: the committed data, no network
    python3 requirements/audit.py --refresh-from-pypi  # first update advisories.json from PyPI

Every `name==version` pin of requirements/test.txt and requirements/runtime.txt is matched
against requirements/advisories.json. One line is printed per finding (package, pinned version,
advisory id with its aliases, the versions that fix it). The exit status is 1 when a finding is
not hidden by requirements/audit-ignore.txt, when that file is malformed, or when a pinned
package was never looked up (it has no key in advisories.json); 0 otherwise.

Matching follows the OSV schema for ECOSYSTEM ranges, with PEP 440 ordering: a version is
affected when it equals one of the advisory's `versions` or falls in one of its ranges. Within a
range the events are sorted by version; "introduced" (where "0" means the first release) opens
it, "fixed" closes it with that version excluded, "last_affected" closes it with that version
included. Pre-releases order before their release (3.0rc1 < 3.0).

Ignoring a finding: one line per advisory in requirements/audit-ignore.txt,
`<advisory id or alias> <expiry YYYY-MM-DD> <reason>`; the entry hides the finding through its
expiry day, after which the finding counts again.

Refreshing advisories.json, newest source first:

1. From PyPI (reachable from CI): `--refresh-from-pypi` reads the project JSON
   (https://pypi.org/pypi/<name>/json) of each pinned package. Its "vulnerabilities" key lists
   the advisories that affect the project's LATEST release only (the per-version JSON, which
   pip-audit needs, is not served here). New ones are added as "pypi-json" records that affect
   every version up to the first release known to be fixed (conservative: a pin on an older
   branch that got a backported fix is still reported; ignore it with a reason). A "pypi-json"
   record that is no longer listed for the latest release is closed at that release. When a
   pin is the latest release (advisories.json records which were, at the last refresh), this
   list is exact for it.
2. From the PyPA advisory database (OSV YAML; needs github.com, which CI does not reach)::

       git clone --depth 1 https://github.com/pypa/advisory-database /tmp/advisory-database
       python3 requirements/advisories_import.py /tmp/advisory-database
       python3 requirements/audit.py --refresh-from-pypi

   The importer replaces the database's records and keeps the "pypi-json" ones it does not
   duplicate; re-run it after requirements/lock.py adds a package.

Where the parts live (requirements/ is no package: this script puts its folder on sys.path):
`audit_match` decides whether an advisory affects a pin, `audit_refresh` merges PyPI's
advisories in, `audit_data` reads and writes advisories.json. This file holds the command
line, the pin and ignore files, and the printed report; it re-exports the names the tests and
`advisories_import.py` use.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling modules: see above

from audit_data import (
    DATA,
    HERE,
    AuditError,
    Record,
    first_line,
    load_data,
    record_ids,
    save_data,
)
from audit_match import Finding, find, fixes_after, is_affected, sorted_events
from audit_refresh import PYPI_SOURCE, Fetch, fetch_project, merge_pypi, pypi_record, refresh

IGNORE = HERE / "audit-ignore.txt"
PIN_FILES = (HERE / "test.txt", HERE / "runtime.txt")

__all__ = [  # what tests/unit/test_audit.py and advisories_import.py read from this script
    "DATA",
    "PYPI_SOURCE",
    "AuditError",
    "Record",
    "audit",
    "find",
    "first_line",
    "fixes_after",
    "is_affected",
    "load_data",
    "main",
    "merge_pypi",
    "pypi_record",
    "read_ignores",
    "read_pins",
    "record_ids",
    "refresh",
    "report",
    "save_data",
    "sorted_events",
]


@dataclass(frozen=True)
class Ignore:
    """One line of audit-ignore.txt."""

    advisory: str
    expires: dt.date
    reason: str
    line: int


def read_pins(paths: Iterable[Path] = PIN_FILES) -> list[tuple[str, str]]:
    """The `name==version` lines of the pin files as sorted, unique (canonical name, version)."""
    pins: set[tuple[str, str]] = set()
    for path in paths:
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.split("#", 1)[0].strip()
            if line:
                name, _, version = line.partition("==")
                pins.add((canonicalize_name(name), version.strip()))
    return sorted(pins)


# --- the ignore file ---------------------------------------------------------------------------


def read_ignores(path: Path = IGNORE) -> list[Ignore]:
    """The entries of audit-ignore.txt; AuditError for a line without an expiry or a reason."""
    if not path.exists():
        return []
    entries = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            entries.append(_parse_ignore(line, number, path.name))
    return entries


def _parse_ignore(line: str, number: int, name: str) -> Ignore:
    """One `<id> <YYYY-MM-DD> <reason>` line."""
    parts = line.split(None, 2)
    if len(parts) < 3 or not parts[2].strip():
        raise AuditError(f"{name}:{number}: want '<advisory id> <expiry YYYY-MM-DD> <reason>'")
    try:
        expires = dt.date.fromisoformat(parts[1])
    except ValueError:
        raise AuditError(f"{name}:{number}: expiry {parts[1]!r} is not YYYY-MM-DD") from None
    return Ignore(parts[0], expires, parts[2].strip(), number)


def matching_ignore(finding: Finding, ignores: list[Ignore]) -> Ignore | None:
    """The ignore entry naming the finding's advisory (by id or alias), the latest expiry first."""
    named = [item for item in ignores if item.advisory in finding.ids]
    return max(named, key=lambda item: item.expires, default=None)


# --- reporting ---------------------------------------------------------------------------------


def describe(finding: Finding) -> str:
    """`package version: ID (aliases) fixed in X: summary` for one finding."""
    record = finding.record
    aliases = ", ".join(sorted(record.get("aliases", [])))
    fixes = ", ".join(fixes_after(finding.version, record))
    fix_text = f"fixed in {fixes}" if fixes else "no fixed release known"
    alias_text = f" ({aliases})" if aliases else ""
    summary = first_line(record.get("summary"), 100)
    return f"{finding.package} {finding.version}: {record['id']}{alias_text}, {fix_text}: {summary}"


def report(findings: list[Finding], ignores: list[Ignore], today: dt.date) -> int:
    """Print each finding and stale ignore entry; the number of findings that are not hidden."""
    failing = 0
    used: set[int] = set()
    for finding in findings:
        entry = matching_ignore(finding, ignores)
        if entry is not None:
            used.add(entry.line)
        if entry is not None and entry.expires >= today:
            print(f"ignored {describe(finding)} [until {entry.expires}: {entry.reason}]")
            continue
        failing += 1
        expired = f" [ignore expired {entry.expires}: {entry.reason}]" if entry else ""
        print(f"VULNERABLE {describe(finding)}{expired}")
    for entry in ignores:
        if entry.line not in used:
            print(f"note: audit-ignore.txt line {entry.line} ({entry.advisory}) matches no finding")
    return failing


def sources_text(data: dict[str, Any]) -> str:
    """Where the data came from and when, for the summary line."""
    sources = data.get("sources", {})
    osv = sources.get("advisory_database", {})
    pypi = sources.get("pypi_json", {})
    parts = []
    if osv:
        parts.append(
            f"PyPA advisory-database {osv.get('commit', '?')[:12]} of {osv.get('date', '?')[:10]}"
        )
    if pypi:
        parts.append(f"PyPI project JSON of {pypi.get('date', '?')[:10]}")
    return "; ".join(parts) or "no source recorded"


def latest_note(data: dict[str, Any], pins: list[tuple[str, str]]) -> str:
    """How many pins were the latest release at the PyPI refresh (its list is exact for them)."""
    latest = data.get("sources", {}).get("pypi_json", {}).get("latest", {})
    if not latest:
        return ""
    current = sum(1 for name, version in pins if latest.get(name) == version)
    return f"; {current}/{len(pins)} pins were the latest release at that refresh"


def audit(
    data: dict[str, Any], pins: list[tuple[str, str]], ignores: list[Ignore], today: dt.date
) -> int:
    """Print the findings and a summary; the exit status (0 clean, 1 otherwise)."""
    packages = data.get("packages", {})
    missing = sorted({name for name, _ in pins if name not in packages})
    failing = report(find(pins, packages), ignores, today)
    checked = sum(len(packages.get(name, [])) for name in {name for name, _ in pins})
    print(
        f"audit: {len(pins)} pinned packages checked against {checked} advisories "
        f"({sources_text(data)}{latest_note(data, pins)}): "
        f"{failing} finding(s) not ignored"
    )
    if missing:
        print(
            f"audit: never looked up (no key in advisories.json): {', '.join(missing)}; "
            "run python3 requirements/audit.py --refresh-from-pypi"
        )
    return 1 if failing or missing else 0


def main(argv: list[str] | None = None, fetch: Fetch = fetch_project) -> int:
    """Parse the arguments, optionally refresh the data, run the audit."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--refresh-from-pypi",
        action="store_true",
        help="merge the advisories of PyPI's project JSON into advisories.json",
    )
    parser.add_argument("--data", type=Path, default=DATA, help=argparse.SUPPRESS)
    parser.add_argument("--ignore-file", type=Path, default=IGNORE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    pins = read_pins()
    try:
        data = load_data(args.data)
        if args.refresh_from_pypi:
            refresh(data, pins, fetch)
            save_data(data, args.data)
        return audit(data, pins, read_ignores(args.ignore_file), dt.date.today())
    except AuditError as error:
        print(f"audit: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
