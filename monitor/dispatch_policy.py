"""What a drain of the outbox is told and what it keeps: the retry policy, the report of one
drain, its running tally and per-drain state, and one guarded call of a sink."""

from __future__ import annotations

import asyncio
import traceback
from dataclasses import dataclass, field

import structlog

from monitor.models import Notification
from monitor.sinks.base import Sink, SinkError, safe_text
from monitor.store import Delivery

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How deliveries are retried: waits between attempts, and when to give up."""

    backoff: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 60)
    """Seconds before attempt n+1 after n failures; the last value repeats."""
    jitter: float = 0.0
    """Each wait grows by a random share of itself up to this (never shrinks)."""
    max_age_s: float = 86400
    """A retryable failure of an event older than this is final."""
    batch_size: int = 100
    """Rows fetched from the outbox at a time."""
    digest_limit: int = 1000
    """The most events one digest carries; a larger backlog goes in several digests."""

    def __post_init__(self) -> None:
        if any(delay < 0 for delay in self.backoff):
            raise ValueError("backoff delays must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.digest_limit < 2:
            raise ValueError("digest_limit must be at least 2")

    @property
    def longest_delay(self) -> float:
        """The longest wait `delay` can give (the last backoff step with all of the jitter)."""
        return max(self.backoff, default=0.0) * (1.0 + self.jitter)

    def delay(self, attempts: int, spread: float = 0.0) -> float:
        """Seconds to wait after the attempt that made `attempts` failures in a row (1-based);
        `spread` in [0, 1) picks where within the jitter the wait lands."""
        if not self.backoff:
            return 0.0
        base = float(self.backoff[min(max(attempts, 1), len(self.backoff)) - 1])
        return base * (1.0 + self.jitter * spread)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one drain did, in rows: delivered, given up, to be retried, held back by a budget."""

    delivered: int
    failed: int
    retrying: int
    deferred: int = 0
    digests: int = 0
    """Digest notifications sent (whatever their outcome)."""


@dataclass(slots=True)
class Tally:
    delivered: int = 0
    failed: int = 0
    retrying: int = 0
    deferred: int = 0
    digests: int = 0
    given_up: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Pass:
    """State shared by the sink tasks of one drain."""

    tally: Tally
    deadline: float | None
    resting: set[str] = field(default_factory=set)
    """Sinks that failed retryably or are out of budget: nothing more for them this drain."""
    seen: set[tuple[str, str]] = field(default_factory=set)
    """(event_id, sink) rows handled this drain, so none is handled twice."""
    deferrals: int = 0
    """Sinks put off to their next free slot this drain (progress, like `seen`)."""

    def progress(self) -> tuple[int, int]:
        """Changes whenever a row was handled or a sink deferred."""
        return (len(self.seen), self.deferrals)


def row_key(row: Delivery) -> tuple[str, str]:
    return (row.event.event_id, row.sink)


async def attempt_send(sink: Sink, notification: Notification) -> SinkError | None:
    """One send; any non-`SinkError` exception becomes a retryable error (and is logged)."""
    try:
        await sink.send(notification)
    except SinkError as error:
        return error
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug in a sink must not stop the other sinks
        where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        log.error(
            "sink raised an unexpected error",
            sink=sink.name,
            error_type=type(exc).__name__,
            error=safe_text(str(exc)),
            where=f"{where.filename}:{where.lineno}" if where else "",
        )
        return SinkError(f"unexpected {type(exc).__name__} in sink", retryable=True)
    return None
