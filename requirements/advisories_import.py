"""Rebuild requirements/advisories.json from a checkout of the PyPA advisory database.

Usage (where github.com is reachable; CI only reads the result)::

    git clone --depth 1 https://github.com/pypa/advisory-database /tmp/advisory-database
    python3 requirements/advisories_import.py /tmp/advisory-database
    python3 requirements/audit.py --refresh-from-pypi   # add what PyPI knows since

The database holds one OSV YAML file per advisory under vulns/<package>/. For every package
pinned in requirements/test.txt and runtime.txt the non-withdrawn advisories are reduced to
what requirements/audit.py needs: id, aliases, a one-line summary, the ECOSYSTEM ranges and the
explicit versions list. The checkout's commit and date go into the header (pass --commit and
--date when the directory is not a git checkout). Records that an earlier
`audit.py --refresh-from-pypi` added are kept unless the database now has the same advisory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name

sys.path.insert(0, str(Path(__file__).resolve().parent))

import audit  # requirements/ is no package: found through the sys.path entry above

REPOSITORY = "https://github.com/pypa/advisory-database"


def package_dirs(database: Path) -> dict[str, Path]:
    """vulns/<package>/ of the database by canonical package name."""
    vulns = database / "vulns"
    if not vulns.is_dir():
        raise SystemExit(f"{vulns} is not a directory: not an advisory-database checkout")
    return {canonicalize_name(path.name): path for path in vulns.iterdir() if path.is_dir()}


def load_osv(path: Path) -> dict[str, Any]:
    """One OSV YAML file, every scalar kept as a string (so 3.10 stays "3.10")."""
    with path.open(encoding="utf-8") as handle:
        return dict(yaml.load(handle, Loader=yaml.BaseLoader))  # strings only, builds no objects


def reduce(osv: dict[str, Any], package: str) -> audit.Record | None:
    """The fields the audit needs, for the affected entries of `package`; None if withdrawn."""
    if osv.get("withdrawn"):
        return None
    ranges: list[dict[str, Any]] = []
    versions: list[str] = []
    for affected in osv.get("affected", []):
        name = affected.get("package", {}).get("name", "")
        if canonicalize_name(name) != package:
            continue
        versions.extend(affected.get("versions", []))
        ranges.extend(
            {"type": "ECOSYSTEM", "events": item.get("events", [])}
            for item in affected.get("ranges", [])
            if item.get("type") == "ECOSYSTEM" and parseable(item, osv["id"])
        )
    return {
        "id": osv["id"],
        "aliases": sorted(osv.get("aliases", [])),
        "summary": audit.first_line(osv.get("summary") or osv.get("details")),
        "ranges": ranges,
        "versions": versions,
        "modified": osv.get("modified", ""),
        "source": "advisory-database",
    }


def parseable(osv_range: dict[str, Any], advisory: str) -> bool:
    """Whether the audit can order the range's bounds; a warning on stderr when it cannot."""
    try:
        audit.sorted_events(osv_range.get("events", []), advisory)
    except audit.AuditError as error:
        print(f"warning: range dropped: {error}", file=sys.stderr)
        return False
    return True


def import_package(directory: Path | None, package: str) -> list[audit.Record]:
    """The reduced advisories of one package (none when the database has no directory)."""
    if directory is None:
        return []
    records = [reduce(load_osv(path), package) for path in sorted(directory.glob("*.yaml"))]
    return [record for record in records if record is not None]


def keep_pypi(old: list[audit.Record], new: list[audit.Record]) -> list[audit.Record]:
    """The earlier "pypi-json" records that none of the database's records duplicates."""
    known = set().union(*(audit.record_ids(record) for record in new))
    return [
        record
        for record in old
        if record.get("source") == audit.PYPI_SOURCE and not audit.record_ids(record) & known
    ]


def git_head(database: Path) -> tuple[str, str]:
    """The checkout's commit id and its committer date (ISO 8601)."""
    result = subprocess.run(
        ["git", "-C", str(database), "log", "-1", "--format=%H %cI"],
        capture_output=True,
        text=True,
        check=True,
    )
    commit, date = result.stdout.split()
    return commit, date


def build(database: Path, commit: str, date: str, old: dict[str, Any]) -> dict[str, Any]:
    """The new advisories.json content for the pinned packages."""
    dirs = package_dirs(database)
    old_packages = old.get("packages", {})
    packages = {}
    for name in sorted({name for name, _ in audit.read_pins()}):
        records = import_package(dirs.get(name), name)
        records += keep_pypi(old_packages.get(name, []), records)
        packages[name] = sorted(records, key=lambda record: record["id"])
    sources = dict(old.get("sources", {}))
    sources["advisory_database"] = {
        "repository": REPOSITORY,
        "commit": commit,
        "date": date,
        "imported": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    return {
        "comment": "Generated; see the docstring of requirements/audit.py.",
        "sources": sources,
        "packages": packages,
    }


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and write requirements/advisories.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path, help="a checkout of pypa/advisory-database")
    parser.add_argument("--commit", help="its commit id (default: read with git)")
    parser.add_argument("--date", help="its commit date, ISO 8601 (default: read with git)")
    args = parser.parse_args(argv)
    commit, date = (
        (args.commit, args.date) if args.commit and args.date else git_head(args.database)
    )
    old = audit.load_data() if audit.DATA.exists() else {}
    data = build(args.database, commit, date, old)
    audit.save_data(data)
    count = sum(len(records) for records in data["packages"].values())
    print(
        f"advisories.json: {count} advisories for {len(data['packages'])} packages "
        f"from {commit[:12]} of {date}"
    )


if __name__ == "__main__":
    main()
