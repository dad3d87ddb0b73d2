"""Where one shard's state lives in a shared PostgreSQL database, and the lease of its replicas.

Each shard is independent, the kube-state-metrics way: with SQLite that is one file per pod (the
sharded overlay's volumeClaimTemplates); with PostgreSQL it is one schema and one lease per
shard, so shard `i` of `n` keeps its snapshots, outbox, rule memory, send times, silences and
its `lease` row in schema `shard_<i>_of_<n>`, and its replicas (a leader and standbys, by
running more than one pod per shard index) contend for lease `dli-monitor/shard-<i>` there.
Shards therefore never fence each other off, and two replicas of one shard elect one leader.

`n` is part of the schema on purpose: after re-sharding, shard `i` of the new layout owns other
targets than shard `i` of the old one. Reusing the old schema would diff against snapshots
another shard has kept polling meanwhile (and re-alert what it already sent) and deliver the
old layout's outbox twice; a new schema starts empty, so every target begins with a silent
baseline under its new owner. The old layout's schemas stay until an operator drops them.

One shard (`total == 1`) keeps the names from before sharding: the server's default schema
(`public`) and lease `dli-monitor`, so an existing deployment keeps its state. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.shard import Shard

LEASE_NAME = "dli-monitor"
"""The lease of a deployment that is not sharded (and the prefix of a shard's lease)."""


@dataclass(frozen=True, slots=True)
class StateScope:
    """A shard's place in the shared database: its schema (None: the default) and lease name."""

    schema: str | None = None
    lease: str = LEASE_NAME


def state_scope(shard: Shard, *, shared_database: bool) -> StateScope:
    """Where `shard` keeps its state; `shared_database` is True with `state.url` (PostgreSQL).

    Without a shared database (SQLite, one file per pod) there is nothing to separate.
    """
    if not shared_database or shard.total == 1:
        return StateScope()
    return StateScope(
        schema=f"shard_{shard.index}_of_{shard.total}",
        lease=f"{LEASE_NAME}/shard-{shard.index}",
    )
