"""advisories.json for the audit: its records, and reading and writing the file.

An advisory record is a dict in the shape of an OSV entry reduced to what the audit needs (id,
aliases, summary, ECOSYSTEM ranges, versions, fixed_in, source). `save_data` writes the file so
that a refresh gives a short diff. Matching a pin against a record is in `audit_match`, merging
PyPI's advisories in `audit_refresh`; the command line is `audit.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "advisories.json"

Record = dict[str, Any]


class AuditError(Exception):
    """The data or the ignore file cannot be used; the message says where."""


def record_ids(record: Record) -> set[str]:
    """An advisory's id and aliases: two records sharing one describe the same advisory."""
    return {record["id"], *record.get("aliases", [])}


def first_line(text: str | None, limit: int = 200) -> str:
    """The first non-empty line of `text`, cut at `limit` characters."""
    line = next((item.strip() for item in (text or "").splitlines() if item.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


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
