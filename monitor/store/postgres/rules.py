"""PostgreSQL: the `RuleMemoryStore` concern — tables `job_history` and `rule_marks`.

Read with `load_rule_memory`; written only inside `commit_poll`'s transaction, through
`write_history`. What the rows mean is in `monitor.store.contract.RuleMemoryStore`; the SQLite
twin is `monitor.store.sqlite.rules`. Durations are a `double precision[]`, a missing anchor NULL.
"""

from __future__ import annotations

from typing import Any

from monitor.models import HistoryUpdate, NameHistory, RuleMark, RuleMemory
from monitor.store.postgres.connection import PostgresBase, optional_aware


class PostgresRuleMemory(PostgresBase):
    """Rule memory over the shared pool."""

    async def load_rule_memory(self, target: str) -> RuleMemory:
        """The lifecycle rules' state of a target: job-name histories and fired-rule marks."""
        histories = await self._fetch(
            "SELECT job_name, durations, failures, last_outcome FROM job_history WHERE target = $1",
            target,
        )
        marks = await self._fetch(
            "SELECT job_id, rule, anchor FROM rule_marks WHERE target = $1", target
        )
        return RuleMemory(
            names={
                str(r["job_name"]): NameHistory(
                    name=str(r["job_name"]),
                    durations_s=tuple(float(d) for d in r["durations"]),
                    failures=int(r["failures"]),
                    last_outcome=str(r["last_outcome"]),
                )
                for r in histories
            },
            marks={
                (str(r["job_id"]), str(r["rule"])): RuleMark(
                    job_id=str(r["job_id"]), rule=str(r["rule"]), anchor=r["anchor"]
                )
                for r in marks
            },
        )


async def write_history(conn: Any, target: str, update: HistoryUpdate) -> None:
    """Apply one poll's rule-state changes (inside the caller's transaction): cleared marks go
    before added ones."""
    if update.names:
        await conn.executemany(
            "INSERT INTO job_history (target, job_name, durations, failures, last_outcome)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (target, job_name) DO UPDATE SET"
            " durations = excluded.durations, failures = excluded.failures,"
            " last_outcome = excluded.last_outcome",
            [
                (target, h.name, list(h.durations_s), h.failures, h.last_outcome)
                for h in update.names
            ],
        )
    if update.marks_cleared:
        await conn.executemany(
            "DELETE FROM rule_marks WHERE target = $1 AND job_id = $2 AND rule = $3",
            [(target, job_id, rule) for job_id, rule in update.marks_cleared],
        )
    if update.marks_added:
        await conn.executemany(
            "INSERT INTO rule_marks (target, job_id, rule, anchor) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (target, job_id, rule) DO UPDATE SET anchor = excluded.anchor",
            [(target, m.job_id, m.rule, optional_aware(m.anchor)) for m in update.marks_added],
        )
