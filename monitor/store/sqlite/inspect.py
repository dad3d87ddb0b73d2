"""Inspecting a state file read-only, for `dli-monitor state check`: safe beside the daemon.

`inspect_state` never creates, migrates or writes the file; `StateReport.lines()` is what the
command prints. Opening the file for use is `monitor.store.sqlite.file`'s.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from monitor.store.sqlite import migrations
from monitor.store.sqlite.file import SCHEMA_VERSION, read_only
from monitor.store.types import count_lines, describe_version


@dataclass(frozen=True, slots=True)
class StateReport:
    """A state file as `inspect_state` found it, read without changing anything."""

    path: str
    size: int | None
    """Bytes of the main file; None when there is no such file."""
    wal_size: int
    version: int | None
    """`PRAGMA user_version`; None when the file could not be read as SQLite."""
    problems: tuple[str, ...]
    """What `PRAGMA integrity_check` reported, or why the file could not be read."""
    rows: dict[str, int]
    pending: dict[str, int]
    """Pending outbox rows per sink."""

    @property
    def ok(self) -> bool:
        """True when the file passed the integrity check and this release can open it."""
        known = self.version is not None and 0 <= self.version <= SCHEMA_VERSION
        return known and not self.problems

    def lines(self) -> list[str]:
        """The report as `dli-monitor state check` prints it, one line per fact."""
        if self.size is None:
            return [f"path: {self.path}", "no such file (the daemon creates it when it starts)"]
        wal = f" (+{self.wal_size} bytes in -wal)" if self.wal_size else ""
        shown = [f"  {problem}" for problem in self.problems[:10]]
        if len(self.problems) > 10:
            shown.append(f"  ... and {len(self.problems) - 10} more")
        return [
            f"path: {self.path}",
            f"size: {self.size} bytes{wal}",
            f"schema version: {describe_version(self.version, SCHEMA_VERSION)}",
            "integrity: " + ("ok" if not self.problems else "FAILED"),
            *shown,
            *count_lines(self.rows, self.pending),
            "state file ok" if self.ok else "state file NOT ok",
        ]


def inspect_state(path: str | Path) -> StateReport:
    """Check a state file read-only: never creates, migrates or writes it (safe while it runs)."""
    name = str(Path(path).absolute())
    file, wal = Path(name), Path(name + "-wal")
    if not file.is_file():
        return StateReport(name, None, 0, None, ("no such file",), {}, {})
    version: int | None = None
    problems: tuple[str, ...] = ()
    rows: dict[str, int] = {}
    pending: dict[str, int] = {}
    try:
        with closing(read_only(name)) as db:
            version = migrations.read_version(db)
            check = [str(row[0]) for row in db.execute("PRAGMA integrity_check")]
            problems = () if check == ["ok"] else tuple(check)
            for (table,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ).fetchall():
                quoted = '"' + str(table).replace('"', '""') + '"'
                rows[table] = int(db.execute(f"SELECT COUNT(*) FROM {quoted}").fetchone()[0])
            if "outbox" in rows:
                pending = dict(
                    db.execute(
                        "SELECT sink, COUNT(*) FROM outbox WHERE status = 'pending'"
                        " GROUP BY sink ORDER BY sink"
                    ).fetchall()
                )
    except sqlite3.Error as exc:
        problems = (*problems, f"cannot be read as SQLite: {exc}")
    size = file.stat().st_size
    wal_size = wal.stat().st_size if wal.is_file() else 0
    return StateReport(name, size, wal_size, version, problems, rows, pending)
