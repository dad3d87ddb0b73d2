"""Shard ownership, the kube-state-metrics way: which monitor process watches which target.

A target is a project, or one queue of a project, named by `target_key`. With `n` shards, target
`k` belongs to shard `shard_of(k, n)`: the first 8 bytes of SHA-256 over the UTF-8 key, read
as a big-endian unsigned integer, modulo `n`. The hash is fixed (never Python's salted
`hash()`), so every process, on every host and after every restart, agrees on the owner.
Changing it moves targets between shards; `tests/unit/test_shard.py` pins a few assignments.

The shard index comes from flags (`--shard i --total-shards n`) or, with `--total-shards n`
alone, from the StatefulSet ordinal in the pod name (`POD_NAME` via the downward API):
`resolve_shard` decides. Pure and stdlib only: no I/O, no environment reads, no logging;
the command line passes the flag values and `POD_NAME` in, and wiring the result into the
poll plan is the caller's business.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_HASH_BYTES = 8
_ORDINAL = re.compile(r".+-([0-9]+)")


def shard_of(key: str, total: int) -> int:
    """The index of the shard that owns `key` among `total` shards (stable across processes)."""
    if total < 1:
        raise ValueError(f"total shards must be at least 1, got {total}")
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:_HASH_BYTES], "big") % total


@dataclass(frozen=True, slots=True)
class Shard:
    """This process's place among `total` shards: it owns the targets that hash to `index`."""

    index: int
    total: int

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ValueError(f"total shards must be at least 1, got {self.total}")
        if not 0 <= self.index < self.total:
            raise ValueError(
                f"shard index {self.index} is out of range for {self.total} shard(s)"
                f" (valid: 0..{self.total - 1})"
            )

    def owns(self, key: str) -> bool:
        """Whether the target named `key` (see `target_key`) is this shard's to watch."""
        return shard_of(key, self.total) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def target_key(project: str, queue: str | None) -> str:
    """The key a shard owns: "project" for a whole project, "project/queue" for one queue."""
    if not project or "/" in project:
        raise ValueError(f"project must be non-empty and free of '/', got {project!r}")
    if queue is None:
        return project
    if not queue or "/" in queue:
        raise ValueError(f"queue must be non-empty and free of '/', got {queue!r}")
    return f"{project}/{queue}"


def shard_from_pod_name(name: str) -> int:
    """The StatefulSet ordinal at the end of a pod name: `dli-monitor-2` gives 2."""
    match = _ORDINAL.fullmatch(name)
    if match is None:
        raise ValueError(
            f"pod name {name!r} does not end in a StatefulSet ordinal ('<name>-<number>');"
            " pass --shard explicitly, or run the shards as a StatefulSet"
        )
    return int(match.group(1))


def resolve_shard(shard: int | None, total: int | None, pod_name: str | None) -> Shard:
    """This process's shard from `--shard`, `--total-shards` and `POD_NAME`.

    Both flags: exactly that shard. `--total-shards` alone: the ordinal of `pod_name`.
    Neither: `Shard(0, 1)`, which owns everything. Raises `ValueError` with a readable
    message for every other combination.
    """
    if total is None:
        if shard is not None:
            raise ValueError(f"--shard {shard} needs --total-shards")
        return Shard(0, 1)
    if total < 1:
        raise ValueError(f"--total-shards must be at least 1, got {total}")
    if shard is not None:
        if not 0 <= shard < total:
            raise ValueError(f"--shard {shard} is out of range for --total-shards {total}")
        return Shard(shard, total)
    return _shard_from_pod(total, pod_name)


def _shard_from_pod(total: int, pod_name: str | None) -> Shard:
    """The shard of a StatefulSet pod: its ordinal, which must be below `total`."""
    if not pod_name:
        raise ValueError(
            f"--total-shards {total} without --shard takes the shard from POD_NAME,"
            " which is not set (expose metadata.name through the downward API)"
        )
    ordinal = shard_from_pod_name(pod_name)
    if ordinal >= total:
        raise ValueError(
            f"pod {pod_name!r} has ordinal {ordinal} but --total-shards is {total};"
            " keep the StatefulSet's replicas equal to --total-shards"
        )
    return Shard(ordinal, total)
