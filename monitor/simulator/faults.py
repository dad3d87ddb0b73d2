"""The simulator's misbehaviour plan: counted fault rules and paging-drift triggers.

Tests arm rules (`world.faults.fail("list_batches", status=500, at_offset=20)`), and the server
consumes them as matching requests arrive. A rule matches by operation (or "any"), optionally by
the list offset (`from`, exact) and by queue (the `queue_name`/`cluster_name` filter of a list
request, the job's queue for per-job calls). Each match uses up one of the rule's `count`.
A `reset` rule drops the connection unanswered. `revoke_tokens()` invalidates every IAM token
issued so far (`iam.TokenIssuer` asks `token_revoked`). Turning a rule into an HTTP answer (or
a dropped connection) is the server's job; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

OPERATIONS = frozenset({"list_batches", "get_batch", "get_state", "get_log", "cancel_batch"})
"""The operations the simulator serves; rules may also name "any"."""

FaultKind = Literal["fail", "rate_limit", "delay", "malformed", "reset"]


@dataclass
class FaultRule:
    """One armed fault; `remaining` counts the requests it will still affect."""

    operation: str
    kind: FaultKind
    remaining: int
    status: int = 500
    body: str | None = None
    retry_after: float = 1.0
    seconds: float = 0.0
    at_offset: int | None = None
    queue: str | None = None

    def matches(self, operation: str, offset: int | None, queue: str | None) -> bool:
        """True when this rule applies to a request with these properties."""
        if self.remaining <= 0:
            return False
        if self.operation not in ("any", operation):
            return False
        if self.at_offset is not None and offset != self.at_offset:
            return False
        return self.queue is None or self.queue == queue


@dataclass
class Drift:
    """A change to the world made just before a list request at `after_offset` or beyond."""

    after_offset: int
    insert: dict[str, Any] | None = None
    remove_id: str | None = None
    queue: str | None = None


def _check(operation: str, count: int) -> None:
    if operation != "any" and operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; one of {sorted(OPERATIONS)} or 'any'")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")


class Faults:
    """The armed fault rules and drift triggers of one world."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.drifts: list[Drift] = []
        self.token_epoch = 0
        """Bumped by `revoke_tokens`; tokens issued in an earlier epoch are revoked."""

    def fail(
        self,
        operation: str,
        status: int = 500,
        count: int = 1,
        at_offset: int | None = None,
        body: str | None = None,
        *,
        queue: str | None = None,
    ) -> None:
        """Answer the next `count` matching requests with `status` (and `body`, if given)."""
        _check(operation, count)
        self.rules.append(
            FaultRule(
                operation, "fail", count, status=status, body=body, at_offset=at_offset, queue=queue
            )
        )

    def rate_limit(
        self,
        operation: str,
        retry_after: float = 1,
        count: int = 1,
        *,
        at_offset: int | None = None,
        queue: str | None = None,
    ) -> None:
        """Answer the next `count` matching requests with 429, `Retry-After` and APIG.0308."""
        _check(operation, count)
        self.rules.append(
            FaultRule(
                operation,
                "rate_limit",
                count,
                status=429,
                retry_after=retry_after,
                at_offset=at_offset,
                queue=queue,
            )
        )

    def delay(
        self,
        operation: str,
        seconds: float,
        count: int = 1,
        *,
        at_offset: int | None = None,
        queue: str | None = None,
    ) -> None:
        """Hold the next `count` matching responses for `seconds` before answering."""
        _check(operation, count)
        self.rules.append(
            FaultRule(operation, "delay", count, seconds=seconds, at_offset=at_offset, queue=queue)
        )

    def malformed(
        self,
        operation: str,
        body: str,
        count: int = 1,
        *,
        at_offset: int | None = None,
        queue: str | None = None,
    ) -> None:
        """Answer the next `count` matching requests with 200 and this raw body."""
        _check(operation, count)
        self.rules.append(
            FaultRule(operation, "malformed", count, 200, body, at_offset=at_offset, queue=queue)
        )

    def reset(
        self,
        operation: str,
        count: int = 1,
        *,
        at_offset: int | None = None,
        queue: str | None = None,
    ) -> None:
        """Drop the connection of the next `count` matching requests unanswered (a TCP reset)."""
        _check(operation, count)
        self.rules.append(FaultRule(operation, "reset", count, at_offset=at_offset, queue=queue))

    def revoke_tokens(self) -> None:
        """Make every IAM token issued so far invalid at once, as if each expired early."""
        self.token_epoch += 1

    def token_revoked(self, epoch: int) -> bool:
        """True when a token issued in `epoch` was revoked since (`clear` does not undo it)."""
        return epoch < self.token_epoch

    def insert_during_paging(self, job: Mapping[str, Any], after_offset: int) -> None:
        """Add a job (kwargs of `World.add_job`) when a list request with from >= offset comes."""
        queue = job.get("queue")
        self.drifts.append(
            Drift(after_offset, insert=dict(job), queue=queue if isinstance(queue, str) else None)
        )

    def remove_during_paging(self, job_id: str, after_offset: int) -> None:
        """Remove a job when a list request with from >= offset comes."""
        self.drifts.append(Drift(after_offset, remove_id=job_id))

    def take_delay(self, operation: str, offset: int | None, queue: str | None) -> float:
        """Seconds to hold this request: the sum of matching delay rules, each used once."""
        total = 0.0
        for rule in self.rules:
            if rule.kind == "delay" and rule.matches(operation, offset, queue):
                rule.remaining -= 1
                total += rule.seconds
        self._prune()
        return total

    def take_response(
        self, operation: str, offset: int | None, queue: str | None
    ) -> FaultRule | None:
        """The first matching answer-replacing rule (used once), or None to answer normally."""
        for rule in self.rules:
            if rule.kind != "delay" and rule.matches(operation, offset, queue):
                rule.remaining -= 1
                self._prune()
                return rule
        return None

    def take_drift(self, offset: int, queue: str | None) -> list[Drift]:
        """The drift triggers due for a list request at `offset`; each fires only once."""
        due: list[Drift] = []
        waiting: list[Drift] = []
        for drift in self.drifts:
            fits = drift.queue is None or queue is None or drift.queue == queue
            (due if fits and offset >= drift.after_offset else waiting).append(drift)
        self.drifts = waiting
        return due

    @property
    def armed(self) -> int:
        """How many rules and drift triggers are still waiting to fire."""
        return len(self.rules) + len(self.drifts)

    def clear(self) -> None:
        """Disarm everything."""
        self.rules.clear()
        self.drifts.clear()

    def _prune(self) -> None:
        self.rules = [rule for rule in self.rules if rule.remaining > 0]
