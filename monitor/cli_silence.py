"""`dli-monitor silence add|list|expire`: the parser and the actions over the state.

With sharded PostgreSQL state (`--total-shards N`; `monitor.cli_shards`), `add` puts the silence
on every shard's schema, or on `--shard I`'s only, so it holds wherever the job's queue lives;
`list` shows the silences of each shard with the shard; `expire ID` ends silence ID and the
copies the same `add` put on the other shards (same job name, scope, start and comment: their
ids may differ where a shard's ids have drifted). With SQLite state, or without the flags, it
works on the one state as it always did.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

from monitor.cli_shards import (
    ShardScope,
    add_shard_arguments,
    shard_stores,
    state_scopes,
    usable_scopes,
)
from monitor.cli_store import CONFIG_ENV, EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from monitor.config import Settings, parse_duration
from monitor.models import utc_now
from monitor.silences import Silence, SilenceError, compile_job_name
from monitor.store import Store, StoreError

Stores = list[tuple[ShardScope, Store]]


def _positive_duration(text: str) -> float:
    """An argparse type: a duration such as 2h or 30m, more than zero."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than zero")
    return seconds


def _job_name_regex(text: str) -> str:
    """An argparse type: a job-name regular expression that compiles."""
    try:
        compile_job_name(text)
    except SilenceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_silence_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`silence add|list|expire`: silences stored in the state named by the config."""
    silence = commands.add_parser(
        "silence", help="mute notifications for matching jobs (stored in the state file)"
    )
    actions = silence.add_subparsers(dest="silence_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a silence (on every shard with --total-shards)")
    add.add_argument("--job-name", required=True, type=_job_name_regex, help="regex, whole name")
    add.add_argument("--queue", default=None, help="queue glob (default: every queue)")
    add.add_argument(
        "--project",
        default=None,
        help="project name glob (default: every project; a single `dli:` mapping's is default)",
    )
    add.add_argument(
        "--for", dest="duration", required=True, type=_positive_duration, help="e.g. 2h, 30m"
    )
    add.add_argument("--comment", default="", help="why (shown by `silence list`)")
    listing = actions.add_parser("list", help="list silences that are active or scheduled")
    listing.add_argument("--all", action="store_true", help="include expired silences")
    expire = actions.add_parser(
        "expire", help="end a silence now (on every shard: with the copies `add` made)"
    )
    expire.add_argument("id", type=int, help="the silence id shown by `silence list`")
    for sub in (add, listing, expire):
        sub.add_argument(
            "--config",
            default=os.environ.get(CONFIG_ENV),
            help=f"config file (default: ${CONFIG_ENV})",
        )
        add_shard_arguments(sub, "operator")


def silence_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `silence` action on the state of `settings` (each shard's, with the flags)."""
    scopes = state_scopes(args, postgres=settings.state.url is not None)
    if scopes is None:
        return EXIT_CONFIG
    scope: str | None = None
    if args.silence_command == "add":
        try:
            scope = Silence.scoped(args.queue, args.project)
        except SilenceError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return EXIT_CONFIG
    try:
        return asyncio.run(_silence_action(args, settings, scopes, scope))
    except StoreError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_FAILURE


async def _silence_action(
    args: argparse.Namespace,
    settings: Settings,
    scopes: tuple[ShardScope, ...],
    scope: str | None,
) -> int:
    """`silence_command` on the event loop: the store's API is async."""
    location, password = settings.state.location, settings.state.password_value()
    adding = args.silence_command == "add"
    usable = await usable_scopes(location, password, scopes, create=adding)
    if not usable:
        return EXIT_FAILURE
    now = utc_now()
    async with shard_stores(location, password, usable) as stores:
        if adding:
            for target, store in stores:
                added = await store.add_silence(
                    job_name=args.job_name,
                    queue=scope,
                    starts_at=now,
                    ends_at=now + timedelta(seconds=args.duration),
                    comment=args.comment,
                )
                sys.stdout.write(
                    f"{target.prefix}silence {added.id} added, until {_iso(added.ends_at)}\n"
                )
            return EXIT_OK
        if args.silence_command == "expire":
            return await _expire(args.id, stores, now)
        return await _list(stores, now, everything=args.all)


async def _list(stores: Stores, now: datetime, *, everything: bool) -> int:
    """Print the silences of every store, with a SHARD column when the state is sharded."""
    sharded = any(scope.label for scope, _ in stores)
    sys.stdout.write(
        ("SHARD\t" if sharded else "") + "ID\tSTATUS\tUNTIL\tPROJECT\tQUEUE\tJOB-NAME\tCOMMENT\n"
    )
    for scope, store in stores:
        for item in await store.list_silences():
            if not everything and item.ends_at <= now:
                continue
            status = "active" if item.is_active(now) else "expired"
            project, queue = item.project_glob or "*", item.queue_glob or "*"
            shard = f"{scope.shard.index}\t" if sharded else ""
            sys.stdout.write(
                f"{shard}{item.id}\t{status}\t{_iso(item.ends_at)}\t{project}\t{queue}"
                f"\t{item.job_name}\t{item.comment}\n"
            )
    return EXIT_OK


async def _expire(silence_id: int, stores: Stores, now: datetime) -> int:
    """End silence `silence_id`: in the one store, or (several shards) with its copies."""
    if len(stores) == 1:
        ((scope, store),) = stores
        try:
            ended = await store.expire_silence(silence_id, now)
        except KeyError:
            where = f" on {scope.label}" if scope.label else ""
            sys.stderr.write(f"error: no silence with id {silence_id}{where}\n")
            return EXIT_FAILURE
        done = "expired" if ended else "had already ended"
        sys.stdout.write(f"{scope.prefix}silence {silence_id} {done}\n")
        return EXIT_OK
    listed = [(scope, store, await store.list_silences()) for scope, store in stores]
    origins = {_origin(s) for _, _, silences in listed for s in silences if s.id == silence_id}
    if not origins:
        sys.stderr.write(f"error: no silence with id {silence_id} on any of the shards\n")
        return EXIT_FAILURE
    if len(origins) > 1:
        sys.stderr.write(
            f"error: id {silence_id} names different silences on different shards; pick one"
            " with --shard I (the SHARD column of `silence list`)\n"
        )
        return EXIT_CONFIG
    (origin,) = origins
    for scope, store, silences in listed:
        for item in silences:
            if _origin(item) == origin:
                ended = await store.expire_silence(item.id, now)
                done = "expired" if ended else "had already ended"
                sys.stdout.write(f"{scope.prefix}silence {item.id} {done}\n")
    return EXIT_OK


def _origin(silence: Silence) -> tuple[str, str | None, datetime, str]:
    """What the copies one `silence add` put on several shards share (not their ids)."""
    return (silence.job_name, silence.queue, silence.starts_at, silence.comment)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
