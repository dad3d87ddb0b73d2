"""Leadership for a hot standby: a lease row in PostgreSQL with a fencing token.

What enters: an asyncpg connection (or a way to open one), a lease name and a holder id. What
leaves: whether this process leads (`LeaseKeeper.is_leader`, `on_change`), and a `Fence` that the
PostgreSQL store checks inside every snapshot commit and outbox claim (`check_fence`), so a deposed
leader can neither commit nor deliver.

- `lease`: the SQL (schema, acquire/renew, fence check, release) as plain functions.
- `keeper`: `LeaseKeeper`, the loop that keeps the lease on the monotonic clock.

Nothing here knows about polling, the store or sinks; it imports no other part of `monitor`.
"""

from monitor.leader.keeper import LeaseKeeper
from monitor.leader.lease import (
    Fence,
    FencedOff,
    LeaseError,
    check_fence,
    current_holder,
    ensure_schema,
    make_holder_id,
    release,
    try_acquire,
)

__all__ = [
    "Fence",
    "FencedOff",
    "LeaseError",
    "LeaseKeeper",
    "check_fence",
    "current_holder",
    "ensure_schema",
    "make_holder_id",
    "release",
    "try_acquire",
]
