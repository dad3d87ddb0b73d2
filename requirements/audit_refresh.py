"""`--refresh-from-pypi`: merge the advisories of PyPI's project JSON into advisories.json.

PyPI's "vulnerabilities" key lists the advisories that affect a project's LATEST release only.
New ones become "pypi-json" records that affect every version up to the first release known to
be fixed; a "pypi-json" record no longer listed for the latest release is closed there. The
network read is `fetch_project`, injectable as `Fetch`. Reading and writing the file are
`audit_data`'s; the matching it relies on is `audit_match`'s.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from audit_data import Record, first_line, record_ids
from audit_match import in_range, is_affected, same_release, sort_version
from packaging.version import Version

PYPI_JSON = "https://pypi.org/pypi/{name}/json"
PYPI_SOURCE = "pypi-json"

Fetch = Callable[[str], dict[str, Any] | None]


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


def pypi_record(entry: dict[str, Any], latest: str) -> Record:
    """A PyPI "vulnerabilities" entry, which affects `latest`, as an advisory record.

    The affected range runs from the first release to the lowest fixed version above `latest`
    (open when there is none); fixed versions below it are backports on other branches."""
    fixed_in = sorted({str(item) for item in entry.get("fixed_in") or []}, key=sort_version)
    above = [item for item in fixed_in if sort_version(item) > sort_version(latest)]
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
    record["versions"] = [
        v for v in record.get("versions", []) if not same_release(Version(latest), v)
    ]
    for item in record.get("ranges", []):
        if in_range(Version(latest), item.get("events", [])):
            item["events"].append({"fixed": latest})
    record["fixed_in"] = sorted({*record.get("fixed_in", []), latest}, key=sort_version)
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
