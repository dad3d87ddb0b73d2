"""The delivery side of the store contract: `Outbox` (the deliveries still owed) and `SendLog`.

The dispatcher walks the outbox and records each attempt's outcome; the send log keeps when
messages went to each sink, so a rate budget survives a restart. The rules every concern keeps
(async methods, aware UTC times, `StoreWriteError` leaving nothing half-written, fenced writes)
are in `monitor.store.contract`, with `Store`, which is every concern at once.

What does not live here: the other concerns (`monitor.store.contract`), the SQL (the backends'
`outbox` and `sends` modules), delivery policy and retries (`monitor.dispatch`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from monitor.models import Event, Notification
from monitor.store.types import Delivery


class Outbox(Protocol):
    """The events found and the deliveries still owed: at-least-once, walked by the dispatcher.

    Rows: an *event* is stored once per `event_id` (by `commit_poll`) with its creation time,
    in commit order. An *outbox row* per (event, sink) is `pending` until marked `delivered`
    or `failed`, both final: a finished row is never changed again (marking it again is a
    no-op; marking a row that never existed is a `KeyError`). A pending row has `attempts`
    (sends tried), `next_attempt_at` (not due before) and `last_error`. `defer` and
    `release_retries` move `next_attempt_at` without counting an attempt. `prune` deletes old
    events with nothing pending, their outbox rows, decisions and attempts with them.

    Every mark that changes a pending row also records, in its own transaction, one attempt
    per row (`TrailStore`): the outcome, `now`, the `reason` as the vendor's answer, the
    failure `kind`, a retry's `next_attempt_at`, and with `digest` (the digest message the rows
    went in) that digest's id. `reason` texts must already be free of secrets.
    """

    async def due(
        self,
        now: datetime,
        limit: int = 100,
        *,
        exclude_sinks: Collection[str] = (),
        sink: str | None = None,
    ) -> list[Delivery]:
        """Pending rows whose next attempt is at or before `now`, oldest event first (then by
        sink name); `sink` restricts them to that one sink."""
        ...

    async def next_due_at(self) -> datetime | None:
        """When the earliest pending row falls due (None when nothing is pending)."""
        ...

    async def mark_delivered(self, event_id: str, sink: str, now: datetime) -> None:
        """Record a successful send (attempts += 1); a row no longer pending is left alone."""
        ...

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
        """Record a failed attempt to be repeated at `next_attempt_at` (attempts += 1); the
        attempt's time is `now` (None: not recorded)."""
        ...

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
        ...

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
        ...

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
        ...

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
        """`mark_retry` for (event_id, next_attempt_at) pairs of one sink, in one transaction
        (`digest` needs `now`)."""
        ...

    async def defer(
        self, sink: str, until: datetime, *, now: datetime | None = None, reason: str = ""
    ) -> int:
        """Move every pending row of `sink` due before `until` to `until`; returns how many.

        Not an attempt: `attempts` and `last_error` stay. This is how a rate budget's next free
        slot (or a vendor's pause) is persisted, so a restart does not send early. With `now`,
        each row moved gets a `deferred` attempt at `now` saying `reason`.
        """
        ...

    async def release_retries(
        self, sink: str, now: datetime, *, beyond: datetime | None = None
    ) -> int:
        """Make every pending row of `sink` that already failed and waits past `beyond`
        (default `now`) due at `now`; returns how many. Not an attempt: `attempts` and
        `last_error` stay."""
        ...

    async def pending_by_sink(self) -> dict[str, int]:
        """How many rows are still pending, per sink (sinks with none are left out)."""
        ...

    async def outbox_summary(self) -> dict[str, tuple[int, datetime | None]]:
        """Per sink with pending rows: (how many, when the oldest pending event was created)."""
        ...

    async def outcome(self, event_id: str, sink: str) -> tuple[str, int, str]:
        """(status, attempts, last_error) of one outbox row; KeyError when there is none."""
        ...

    async def delivered_events(self, sink: str, since: datetime | None) -> list[Event]:
        """The events delivered to `sink` at or after `since` (None: all kept), oldest event
        first: what a sink that keeps state about its receiver replays after a restart."""
        ...

    async def prune(self, *, older_than: datetime) -> int:
        """Delete events created before `older_than` with nothing pending; returns how many."""
        ...


class SendLog(Protocol):
    """When messages went to each sink, so a rate budget survives a restart.

    Rows: one per message sent (a digest is one), (sink, time); recording a send forgets that
    sink's sends older than `keep_s`. Nothing else changes them.
    """

    async def record_send(self, sink: str, at: datetime, *, keep_s: float = 3600.0) -> None:
        """Remember that a message went to `sink` at `at`; forget its sends older than `keep_s`."""
        ...

    async def recent_sends(self, sink: str, since: datetime) -> list[datetime]:
        """The send times of `sink` after `since`, oldest first (to rebuild a rate budget)."""
        ...
