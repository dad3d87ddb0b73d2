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
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

HERE = Path(__file__).resolve().parent
DATA = HERE / "advisories.json"
IGNORE = HERE / "audit-ignore.txt"
PIN_FILES = (HERE / "test.txt", HERE / "runtime.txt")
PYPI_JSON = "https://pypi.org/pypi/{name}/json"
PYPI_SOURCE = "pypi-json"

Record = dict[str, Any]
Fetch = Callable[[str], dict[str, Any] | None]


class AuditError(Exception):
    """The data or the ignore file cannot be used; the message says where."""


@dataclass(frozen=True)
class Finding:
    """A pinned version that an advisory affects."""

    package: str
    version: str
    record: Record

    @property
    def ids(self) -> set[str]:
        """The advisory's id and its aliases."""
        return record_ids(self.record)


@dataclass(frozen=True)
class Ignore:
    """One line of audit-ignore.txt."""

    advisory: str
    expires: dt.date
    reason: str
    line: int


# --- pins and versions -------------------------------------------------------------------------


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


def parse_version(text: str, where: str) -> Version:
    """`text` as a PEP 440 version; AuditError naming `where` if it is not one."""
    try:
        return Version(text)
    except InvalidVersion:
        raise AuditError(f"{where}: {text!r} is not a PEP 440 version") from None


# --- OSV matching --------------------------------------------------------------------------------

_EVENT_ORDER = {"introduced": 0, "fixed": 1, "last_affected": 2}


def sorted_events(events: list[dict[str, str]], where: str) -> list[tuple[str, Version | None]]:
    """The range's events as (kind, version) by version; introduced "0" is None, sorting first."""
    out: list[tuple[str, Version | None]] = []
    for event in events:
        for kind, value in event.items():
            if kind not in _EVENT_ORDER:
                continue  # "limit" only bounds GIT ranges
            zero = kind == "introduced" and value == "0"
            out.append((kind, None if zero else parse_version(value, where)))
    return sorted(out, key=lambda e: (e[1] is not None, e[1] or Version("0"), _EVENT_ORDER[e[0]]))


def in_range(version: Version, events: list[dict[str, str]], where: str = "range") -> bool:
    """Whether `version` lies in one OSV ECOSYSTEM range (the schema's evaluation algorithm)."""
    affected = False
    for kind, bound in sorted_events(events, where):
        if bound is None or _reached(kind, version, bound):
            affected = kind == "introduced"
    return affected


def _reached(kind: str, version: Version, bound: Version) -> bool:
    """Whether the event applies to `version`: at or above it, strictly above last_affected."""
    return version > bound if kind == "last_affected" else version >= bound


def is_affected(version: str, record: Record) -> bool:
    """Whether the advisory lists `version` or one of its ECOSYSTEM ranges contains it."""
    where = str(record.get("id", "?"))
    pinned = parse_version(version, "pin")
    listed = record.get("versions", [])
    if any(_same(pinned, item) for item in listed):
        return True
    return any(
        in_range(pinned, item.get("events", []), where)
        for item in record.get("ranges", [])
        if item.get("type", "ECOSYSTEM") == "ECOSYSTEM"
    )


def _same(version: Version, text: str) -> bool:
    """`text` is the same release as `version` (unparseable entries match nothing)."""
    try:
        return Version(text) == version
    except InvalidVersion:
        return False


def fixes_after(version: str, record: Record) -> list[str]:
    """The advisory's fixed versions above `version` (from its ranges and its fixed_in list)."""
    pinned = parse_version(version, "pin")
    fixes = set(record.get("fixed_in", []))
    for item in record.get("ranges", []):
        fixes.update(e["fixed"] for e in item.get("events", []) if "fixed" in e)
    where = str(record.get("id", "?"))
    above = [fix for fix in fixes if parse_version(fix, where) > pinned]
    return sorted(above, key=Version)


def find(pins: Iterable[tuple[str, str]], packages: dict[str, list[Record]]) -> list[Finding]:
    """Every (pin, advisory) pair where the advisory affects the pinned version."""
    return [
        Finding(name, version, record)
        for name, version in pins
        for record in packages.get(canonicalize_name(name), [])
        if is_affected(version, record)
    ]


def record_ids(record: Record) -> set[str]:
    """An advisory's id and aliases: two records sharing one describe the same advisory."""
    return {record["id"], *record.get("aliases", [])}


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


# --- refreshing from PyPI ----------------------------------------------------------------------


def fetch_project(name: str) -> dict[str, Any] | None:
    """PyPI's project JSON for `name`, or None if it cannot be had (reported on stderr)."""
    request = urllib.request.Request(
        PYPI_JSON.format(name=name), headers={"User-Agent": "dli-batch-monitor-audit"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.load(response))
    except (urllib.error.URLError, TimeoutError, ValueError) as error:
        print(f"refresh: {name}: {error}", file=sys.stderr)
        return None


def first_line(text: str | None, limit: int = 200) -> str:
    """The first non-empty line of `text`, cut at `limit` characters."""
    line = next((item.strip() for item in (text or "").splitlines() if item.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def pypi_record(entry: dict[str, Any], latest: str) -> Record:
    """A PyPI "vulnerabilities" entry, which affects `latest`, as an advisory record.

    The affected range runs from the first release to the lowest fixed version above `latest`
    (open when there is none); fixed versions below it are backports on other branches."""
    fixed_in = sorted({str(item) for item in entry.get("fixed_in") or []}, key=_version_key)
    above = [item for item in fixed_in if _version_key(item) > _version_key(latest)]
    events: list[dict[str, str]] = [{"introduced": "0"}]
    if above:
        events.append({"fixed": above[0]})
    return {
        "id": str(entry["id"]),
        "aliases": sorted(str(item) for item in entry.get("aliases") or []),
        "summary": first_line(entry.get("summary") or entry.get("details")),
        "ranges": [{"type": "ECOSYSTEM", "events": events}],
        "versions": [latest],
        "fixed_in": fixed_in,
        "source": PYPI_SOURCE,
    }


def _version_key(text: str) -> Version:
    """`text` as a version for sorting; an unparseable one sorts first."""
    try:
        return Version(text)
    except InvalidVersion:
        return Version("0")


def merge_pypi(records: list[Record], entries: list[dict[str, Any]], latest: str) -> int:
    """Merge the PyPI entries for `latest` into `records` in place; how many records changed.

    An entry sharing an id or alias with a record is not added again, but `latest` is added
    to that record's versions if the record did not cover it. A "pypi-json" record that PyPI
    no longer lists for `latest` is closed there (fixed at `latest` at the latest)."""
    changed = 0
    listed: set[str] = set()
    for entry in entries:
        if entry.get("withdrawn"):
            continue
        new = pypi_record(entry, latest)
        listed |= record_ids(new)
        same = next((r for r in records if record_ids(r) & record_ids(new)), None)
        if same is None:
            records.append(new)
            changed += 1
        elif not is_affected(latest, same):
            same.setdefault("versions", []).append(latest)
            changed += 1
    for record in records:
        if record.get("source") == PYPI_SOURCE and not record_ids(record) & listed:
            changed += close_record(record, latest)
    return changed


def close_record(record: Record, latest: str) -> int:
    """Close a "pypi-json" record's open range at `latest`, known unaffected; 1 if it changed."""
    if not is_affected(latest, record):
        return 0
    record["versions"] = [v for v in record.get("versions", []) if not _same(Version(latest), v)]
    for item in record.get("ranges", []):
        if in_range(Version(latest), item.get("events", [])):
            item["events"].append({"fixed": latest})
    record["fixed_in"] = sorted({*record.get("fixed_in", []), latest}, key=_version_key)
    return 1


def refresh(data: dict[str, Any], pins: list[tuple[str, str]], fetch: Fetch) -> None:
    """Merge PyPI's advisories for every pinned package into `data`; print a summary line."""
    packages = data.setdefault("packages", {})
    latest: dict[str, str] = {}
    unreachable: list[str] = []
    changed = 0
    for name in sorted({name for name, _ in pins}):
        project = fetch(name)
        if project is None:
            unreachable.append(name)
            continue
        latest[name] = str(project["info"]["version"])
        records = packages.setdefault(name, [])
        changed += merge_pypi(records, list(project.get("vulnerabilities") or []), latest[name])
        records.sort(key=lambda record: record["id"])
    data.setdefault("sources", {})["pypi_json"] = {
        "url": PYPI_JSON,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "latest": latest,
        "unreachable": unreachable,
    }
    print(
        f"refresh: {len(latest)} projects read from PyPI, {len(unreachable)} unreachable, "
        f"{changed} advisory records added or changed"
    )


# --- data file and entry point -----------------------------------------------------------------


def load_data(path: Path = DATA) -> dict[str, Any]:
    """advisories.json as a dict."""
    return dict(json.loads(path.read_text(encoding="utf-8")))


def save_data(data: dict[str, Any], path: Path = DATA) -> None:
    """Write advisories.json with sorted keys; flat lists stay on one line, for short diffs."""
    path.write_text(to_json(data) + "\n", encoding="utf-8")


def to_json(value: Any, depth: int = 0) -> str:
    """JSON indented by one space a level, except that a list of scalars or of flat objects
    (a versions list, a range's events) is written on one line."""
    if not value or (isinstance(value, list) and all(_flat(item) for item in value)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    inner, outer = " " * (depth + 1), " " * depth
    if isinstance(value, dict):
        items = [
            f"{inner}{json.dumps(k)}: {to_json(v, depth + 1)}" for k, v in sorted(value.items())
        ]
        return "{\n" + ",\n".join(items) + f"\n{outer}}}"
    if isinstance(value, list):
        return (
            "[\n" + ",\n".join(inner + to_json(item, depth + 1) for item in value) + f"\n{outer}]"
        )
    return json.dumps(value, ensure_ascii=False)


def _flat(value: Any) -> bool:
    """A scalar, or an object whose values are all scalars."""
    if isinstance(value, dict):
        return all(not isinstance(item, dict | list) for item in value.values())
    return not isinstance(value, list)


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
