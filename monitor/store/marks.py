"""The outbox's marks, once for both backends: each `mark_*` of the contract is one call of
the backend's `_finish` (a final outcome) or `_retry` (another attempt later), which write the
outbox rows and their attempts in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from monitor.models import Notification
from monitor.models_explain import RETRY
from monitor.store.types import DELIVERED, FAILED, Mark


class OutboxMarks:
    """`Outbox.mark_*` over two primitives every backend provides."""

    async def _finish(
        self,
        event_ids: Sequence[str],
        sink: str,
        mark: Mark,
        *,
        attempted: bool = True,
        check: bool = False,
        digest: Notification | None = None,
    ) -> None:
        """Mark pending rows final (`mark.outcome`) and record each one's attempt."""
        raise NotImplementedError

    async def _retry(
        self,
        retries: Sequence[tuple[str, datetime]],
        sink: str,
        mark: Mark,
        *,
        check: bool = False,
        digest: Notification | None = None,
    ) -> None:
        """Count a failed attempt on pending rows, due again at the given times."""
        raise NotImplementedError

    async def mark_delivered(self, event_id: str, sink: str, now: datetime) -> None:
        """Record a successful send (attempts += 1); a row no longer pending is left alone."""
        await self._finish([event_id], sink, Mark(DELIVERED, now), check=True)

    async def mark_retry(
        self,
        event_id: str,
        sink: str,
        *,
        next_attempt_at: datetime,
        reason: str,
        now: datetime | None = None,
        kind: str = "",
    ) -> None:
        """Record a failed attempt to be repeated at `next_attempt_at` (attempts += 1)."""
        mark = Mark(RETRY, now, reason, kind)
        await self._retry([(event_id, next_attempt_at)], sink, mark, check=True)

    async def mark_failed(
        self,
        event_id: str,
        sink: str,
        *,
        reason: str,
        now: datetime,
        attempted: bool = True,
        kind: str = "",
        digest: Notification | None = None,
    ) -> None:
        """Give up on a row for good; `attempted=False` when no send was made (sink removed)."""
        mark = Mark(FAILED, now, reason, kind)
        await self._finish([event_id], sink, mark, attempted=attempted, check=True, digest=digest)

    async def mark_delivered_many(
        self,
        event_ids: Sequence[str],
        sink: str,
        now: datetime,
        *,
        digest: Notification | None = None,
    ) -> None:
        """`mark_delivered` for every row of one message (`digest`: a digest), in one
        transaction."""
        await self._finish(event_ids, sink, Mark(DELIVERED, now), digest=digest)

    async def mark_failed_many(
        self,
        event_ids: Sequence[str],
        sink: str,
        *,
        reason: str,
        now: datetime,
        kind: str = "",
        digest: Notification | None = None,
    ) -> None:
        """`mark_failed` for every row of one message, in one transaction."""
        await self._finish(event_ids, sink, Mark(FAILED, now, reason, kind), digest=digest)

    async def mark_retry_many(
        self,
        retries: Sequence[tuple[str, datetime]],
        sink: str,
        *,
        reason: str,
        now: datetime | None = None,
        kind: str = "",
        digest: Notification | None = None,
    ) -> None:
        """`mark_retry` for (event_id, next_attempt_at) pairs of one sink, in one transaction."""
        await self._retry(retries, sink, Mark(RETRY, now, reason, kind), digest=digest)
