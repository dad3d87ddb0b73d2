"""The lease row in PostgreSQL: acquire or renew it, check the fence, release it.

One row per leadership scope, judged only by the server's clock, so the replicas' clocks never
matter::

    lease(name text primary key, holder text, token bigint, expires_at timestamptz)

- `try_acquire` takes or renews the lease in one statement and returns the fencing token. The
  token grows by one every time the holder changes and stays the same on renewal.
- `check_fence` runs inside the caller's transaction and locks the row `FOR SHARE` until that
  transaction ends: a deposed leader fails its write (`FencedOff`), and a standby's takeover waits
  until a write that passed the check has committed.
- `release` ends the lease at once so a standby can take over without waiting for the TTL.

The loop that keeps a lease lives in `monitor.leader.keeper`. Plain functions over an asyncpg
connection; no pool, no retries, no logging here.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

import asyncpg

_SCHEMA_LOCK = "monitor.leader.schema"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS lease (
    name text PRIMARY KEY,
    holder text NOT NULL,
    token bigint NOT NULL,
    expires_at timestamptz NOT NULL
)
"""

# Insert when absent; otherwise take it over when it has expired, or renew it when it is ours.
# The token changes only with the holder. No row back means someone else holds an unexpired lease.
_ACQUIRE = """
INSERT INTO lease AS l (name, holder, token, expires_at)
VALUES ($1, $2, 1, now() + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE
SET holder = EXCLUDED.holder,
    token = CASE WHEN l.holder = EXCLUDED.holder THEN l.token ELSE l.token + 1 END,
    expires_at = EXCLUDED.expires_at
WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
RETURNING token
"""

# clock_timestamp(), not now(): a long transaction must not pass the check on its start time.
_FENCE = """
SELECT 1 FROM lease
WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > clock_timestamp()
FOR SHARE
"""

_CURRENT = "SELECT holder, token, expires_at > clock_timestamp() AS live FROM lease WHERE name = $1"

_RELEASE = """
UPDATE lease SET expires_at = now()
WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > now()
"""


class LeaseError(Exception):
    """Something about the leader lease stops this process from acting as the leader."""


@dataclass(frozen=True, slots=True)
class Fence:
    """Proof of leadership: the lease `name` held by `holder` under fencing `token`."""

    name: str
    holder: str
    token: int


class FencedOff(LeaseError):
    """The lease is no longer ours: another holder took it over, or it expired."""

    def __init__(self, fence: Fence, current_holder: str | None, current_token: int | None):
        self.fence = fence
        self.current_holder = current_holder
        self.current_token = current_token
        if current_holder is None:
            now = "the lease row is gone"
        elif (current_holder, current_token) == (fence.holder, fence.token):
            now = "it has expired"
        else:
            now = f"now held by {current_holder} with token {current_token}"
        super().__init__(
            f"fenced off: lease {fence.name!r} is no longer held by {fence.holder} "
            f"with token {fence.token} ({now})"
        )


def make_holder_id() -> str:
    """A holder id unique to this process: `hostname:pid:random`."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


async def ensure_schema(conn: asyncpg.Connection) -> None:
    """Create the `lease` table if it is missing; safe to call concurrently from many replicas."""
    async with conn.transaction():
        # CREATE TABLE IF NOT EXISTS can still collide when two sessions run it at once.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", _SCHEMA_LOCK)
        await conn.execute(_CREATE_TABLE)


async def try_acquire(conn: asyncpg.Connection, name: str, holder: str, ttl_s: float) -> int | None:
    """Take or renew lease `name` for `ttl_s` seconds; the fencing token, or None if held."""
    if ttl_s <= 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    token = await conn.fetchval(_ACQUIRE, name, holder, float(ttl_s))
    return None if token is None else int(token)


async def current_holder(conn: asyncpg.Connection, name: str) -> tuple[str, int] | None:
    """Who holds lease `name` unexpired right now, with the token; None when nobody does."""
    row = await conn.fetchrow(_CURRENT, name)
    if row is None or not row["live"]:
        return None
    return str(row["holder"]), int(row["token"])


async def check_fence(conn: asyncpg.Connection, fence: Fence) -> None:
    """Inside the caller's transaction: raise `FencedOff` unless `fence` still holds the lease.

    Call it first in every transaction that must only commit while we lead (a snapshot commit,
    an outbox claim). The row stays share-locked until that transaction ends, so a takeover
    waits for our commit, and a write after a takeover raises here and is rolled back.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("check_fence must run inside the transaction it protects")
    if await conn.fetchval(_FENCE, fence.name, fence.holder, fence.token) is not None:
        return
    row = await conn.fetchrow("SELECT holder, token FROM lease WHERE name = $1", fence.name)
    if row is None:
        raise FencedOff(fence, None, None)
    raise FencedOff(fence, str(row["holder"]), int(row["token"]))


async def release(conn: asyncpg.Connection, fence: Fence) -> bool:
    """Step down: expire the lease now if `fence` still holds it; True when it did."""
    status = await conn.execute(_RELEASE, fence.name, fence.holder, fence.token)
    return bool(status == "UPDATE 1")
