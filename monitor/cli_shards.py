"""The `--shard I --total-shards N` flags of `dli-monitor`, and whose state a command acts on.

A process (`run`, `once`) is exactly one shard: `shard_from_args` resolves the flags with
`monitor.shard.resolve_shard`, `--total-shards N` alone taking the StatefulSet ordinal from
`POD_NAME`. So is the target of `state migrate` (`shard_scope`: a shard pod's file goes into its
shard's schema). The operator commands (`silence`, `state check`, `explain`) act on a
deployment's state, not a process's: `shards_from_args` gives shard I with `--shard I`, every one
of the N shards with `--total-shards N` alone (`POD_NAME` is not asked: a silence must hold
wherever the job's queue lives, and a job may be on any shard), and the one unsharded state with
neither. `state_scopes` says where those keep their state (`monitor.shard_state`): a PostgreSQL
schema each with `state.url`; with SQLite (one file per pod) the flags change nothing.
`usable_scopes` drops the shards whose schema does not exist (rather than creating it), and
`shard_stores` opens one store per scope.

What does not live here: the hash and the ordinal (`monitor.shard`), the schema names
(`monitor.shard_state`), what each command does with the stores (`monitor.cli_store`,
`monitor.cli_silence`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from monitor.shard import Shard, resolve_shard
from monitor.shard_state import state_scope
from monitor.store import Store, open_reader, open_store

_HELP = {
    "process": (
        "this process's shard, 0..N-1 (default with --total-shards: the ordinal in POD_NAME)",
        "how many shards split the targets (default: 1, this process watches all)",
    ),
    "operator": (
        "only shard I's state (needs --total-shards)",
        "the deployment's shard count: with PostgreSQL state (state.url) act on every shard's"
        " schema, or on --shard I's only; with SQLite state (a file per pod) these flags"
        " change nothing",
    ),
    "target": (
        "copy into shard I's schema (default with --total-shards: the ordinal in POD_NAME)",
        "the deployment's shard count: copy into schema shard_<I>_of_<N>"
        " (default: the database's default schema)",
    ),
}
"""(--shard, --total-shards) help per kind of command."""


def add_shard_arguments(sub: argparse.ArgumentParser, kind: str = "process") -> None:
    """`--shard` and `--total-shards`, explained for a `process` (`run`, `once`), an `operator`
    command (`silence`, `state check`, `explain`) or the `target` of `state migrate`."""
    shard_help, total_help = _HELP[kind]
    sub.add_argument("--shard", type=int, default=None, metavar="I", help=shard_help)
    sub.add_argument("--total-shards", type=int, default=None, metavar="N", help=total_help)


def shard_from_args(args: argparse.Namespace) -> Shard | None:
    """The one shard the flags (and `POD_NAME`) name; None after printing why they do not fit."""
    try:
        return resolve_shard(args.shard, args.total_shards, os.environ.get("POD_NAME"))
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return None


def shards_from_args(args: argparse.Namespace) -> tuple[Shard, ...] | None:
    """The shards an operator command acts on: `--shard I`'s, all N with `--total-shards N`
    alone, the unsharded one with neither; None after printing why the flags do not fit."""
    try:
        if args.total_shards is None or args.shard is not None:
            return (resolve_shard(args.shard, args.total_shards, None),)
        first = resolve_shard(0, args.total_shards, None)  # checks N as `run` does
        return tuple(Shard(index, first.total) for index in range(first.total))
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return None


@dataclass(frozen=True, slots=True)
class ShardScope:
    """A shard and the PostgreSQL schema its state is in (None: the default, or SQLite)."""

    shard: Shard
    schema: str | None = None

    @property
    def label(self) -> str:
        """How output names the shard (`shard 1/3`); empty for state that is not split."""
        return "" if self.schema is None else f"shard {self.shard}"

    @property
    def prefix(self) -> str:
        """What output lines about this shard start with (`shard 1/3: `, or nothing)."""
        return f"{self.label}: " if self.label else ""


UNSHARDED = ShardScope(Shard(0, 1))


def state_scopes(args: argparse.Namespace, *, postgres: bool) -> tuple[ShardScope, ...] | None:
    """Where the state of the shards an operator command acts on lives (`postgres`: the state
    is a PostgreSQL database); None after printing why the flags do not fit."""
    shards = shards_from_args(args)
    if shards is None:
        return None
    if not postgres:
        return (UNSHARDED,)
    return tuple(ShardScope(s, state_scope(s, shared_database=True).schema) for s in shards)


def shard_scope(args: argparse.Namespace) -> ShardScope | None:
    """The one shard's schema that `state migrate` copies into; None after printing why the
    flags do not fit."""
    shard = shard_from_args(args)
    if shard is None:
        return None
    return ShardScope(shard, state_scope(shard, shared_database=True).schema)


async def usable_scopes(
    location: str | Path,
    password: str | None,
    scopes: Sequence[ShardScope],
    *,
    create: bool = False,
) -> tuple[ShardScope, ...]:
    """The scopes to act on: those whose schema exists, or (`create`) every one once any does,
    with a note on each missing one; () after printing that none exists. State that is not
    split is always usable (as it always was)."""
    named = [scope.schema for scope in scopes if scope.schema is not None]
    if not named:
        return tuple(scopes)
    from monitor.store.postgres.inspect import existing_schemas  # asyncpg: only when needed

    found = await existing_schemas(str(location), password=password, names=named)
    missing = [scope for scope in scopes if scope.schema not in found]
    if len(missing) == len(scopes):
        shards = ", ".join(str(scope.shard) for scope in scopes)
        schema = named[0] if len(named) == 1 else f"shard_<i>_of_{scopes[0].shard.total}"
        sys.stderr.write(
            f"error: {location} holds no state of shard(s) {shards} (no schema {schema});"
            " is --total-shards right? Nothing was changed\n"
        )
        return ()
    then = "its schema is created now, and the shard uses it when it runs" if create else "skipped"
    for scope in missing:
        sys.stderr.write(
            f"note: {scope.label} has no state yet (no schema {scope.schema}): {then}\n"
        )
    return tuple(scopes) if create else tuple(s for s in scopes if s not in missing)


@asynccontextmanager
async def shard_stores(
    location: str | Path,
    password: str | None,
    scopes: Sequence[ShardScope],
    *,
    read_only: bool = False,
) -> AsyncIterator[list[tuple[ShardScope, Store]]]:
    """One open store per scope (`read_only`: opened with `open_reader`), closed on exit."""
    opener = open_reader if read_only else open_store
    async with AsyncExitStack() as stack:
        stores: list[tuple[ShardScope, Store]] = []
        for scope in scopes:
            store = await opener(location, password=password, schema=scope.schema)
            stack.push_async_callback(store.close)
            stores.append((scope, store))
        yield stores
