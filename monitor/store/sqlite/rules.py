"""SQLite: the `RuleMemoryStore` concern — tables `job_history` and `rule_marks`.

Read with `load_rule_memory`; written only inside `commit_poll`'s transaction, through
`write_history`. What the rows mean is in `monitor.store.contract.RuleMemoryStore`.
"""

from __future__ import annotations

import json
import sqlite3

from monitor.models import HistoryUpdate, NameHistory, RuleMark, RuleMemory
from monitor.store.sqlite.connection import SqliteBase, stamp, unstamp


class SqliteRuleMemory(SqliteBase):
    """Rule memory over the shared connection."""

    async def load_rule_memory(self, target: str) -> RuleMemory:
        """The lifecycle rules' state of a target: job-name histories and fired-rule marks."""
        names = {
            name: NameHistory(
                name=name,
                durations_s=tuple(float(d) for d in json.loads(durations)),
                failures=int(failures),
                last_outcome=str(outcome),
            )
            for name, durations, failures, outcome in self._db.execute(
                "SELECT job_name, durations, failures, last_outcome FROM job_history"
                " WHERE target = ?",
                (target,),
            )
        }
        marks = {
            (job_id, rule): RuleMark(
                job_id=job_id, rule=rule, anchor=unstamp(anchor) if anchor else None
            )
            for job_id, rule, anchor in self._db.execute(
                "SELECT job_id, rule, anchor FROM rule_marks WHERE target = ?", (target,)
            )
        }
        return RuleMemory(names=names, marks=marks)


def write_history(db: sqlite3.Connection, target: str, update: HistoryUpdate) -> None:
    """Apply one poll's rule-state changes (inside the caller's transaction): cleared marks go
    before added ones."""
    db.executemany(
        "INSERT INTO job_history (target, job_name, durations, failures, last_outcome)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (target, job_name) DO UPDATE SET"
        " durations = excluded.durations, failures = excluded.failures,"
        " last_outcome = excluded.last_outcome",
        (
            (target, h.name, json.dumps(list(h.durations_s)), h.failures, h.last_outcome)
            for h in update.names
        ),
    )
    db.executemany(
        "DELETE FROM rule_marks WHERE target = ? AND job_id = ? AND rule = ?",
        ((target, job_id, rule) for job_id, rule in update.marks_cleared),
    )
    db.executemany(
        "INSERT INTO rule_marks (target, job_id, rule, anchor) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (target, job_id, rule) DO UPDATE SET anchor = excluded.anchor",
        (
            (target, m.job_id, m.rule, stamp(m.anchor) if m.anchor else "")
            for m in update.marks_added
        ),
    )
