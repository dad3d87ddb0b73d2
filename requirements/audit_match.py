"""Whether an advisory affects a pinned version: OSV ECOSYSTEM ranges under PEP 440 ordering.

`is_affected` is the OSV schema's evaluation algorithm (its rules are spelled out in the
docstring of `audit.py`, the command's documentation); `find` pairs the pins with the
advisories that affect them and `fixes_after` names the releases that fix one. Reading the pin
and ignore files and printing are `audit.py`'s; the record shape and the data file are
`audit_data`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from audit_data import AuditError, Record, record_ids
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


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


def parse_version(text: str, where: str) -> Version:
    """`text` as a PEP 440 version; AuditError naming `where` if it is not one."""
    try:
        return Version(text)
    except InvalidVersion:
        raise AuditError(f"{where}: {text!r} is not a PEP 440 version") from None


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
    if any(same_release(pinned, item) for item in listed):
        return True
    return any(
        in_range(pinned, item.get("events", []), where)
        for item in record.get("ranges", [])
        if item.get("type", "ECOSYSTEM") == "ECOSYSTEM"
    )


def same_release(version: Version, text: str) -> bool:
    """`text` is the same release as `version` (unparseable entries match nothing)."""
    try:
        return Version(text) == version
    except InvalidVersion:
        return False


def sort_version(text: str) -> Version:
    """`text` as a version for sorting; an unparseable one sorts first."""
    try:
        return Version(text)
    except InvalidVersion:
        return Version("0")


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
