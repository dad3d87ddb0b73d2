"""The `state` and `explain` subcommands of `dli-monitor`: their parsers and their actions over
the store, and the config loading and exit codes every command shares (`silence` is in
`monitor.cli_silence`).

With sharded PostgreSQL state (`--total-shards N`, `monitor.cli_shards`), `explain` searches
every shard's schema (or `--shard I`'s) and names the shard of each answer, `state check`
reports each shard's schema read-only, and `state migrate` copies the file into one shard's
schema. With SQLite state the shard flags change nothing; without them, nothing changes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.cli_shards import (
    ShardScope,
    add_shard_arguments,
    shard_scope,
    shard_stores,
    shards_from_args,
    state_scopes,
    usable_scopes,
)
from monitor.config import ConfigError, Settings, load_settings, secret_values
from monitor.config.models import postgres_url
from monitor.logs import add_secrets
from monitor.models import utc_now
from monitor.store import StoreError, is_postgres_url
from monitor.store.sqlite import inspect_state

if TYPE_CHECKING:
    from monitor.explain import Explanation
    from monitor.store.postgres.inspect import SchemaReport

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
CONFIG_ENV = "DLI_MONITOR_CONFIG"


def add_state_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`state check`: inspect the state file read-only (safe while the daemon runs);
    `state migrate`: copy the state file into an empty PostgreSQL database."""
    state = commands.add_parser("state", help="inspect the state file, or move it to PostgreSQL")
    actions = state.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="print version, integrity, row counts and pending deliveries; exit 1 when not ok",
    )
    _add_state_source(check)
    add_shard_arguments(check, "operator")
    _add_migrate_parser(actions)


def _add_state_source(
    parser: argparse.ArgumentParser,
    *,
    config_help: str = f"config file naming the state file (default: ${CONFIG_ENV})",
    state_help: str = "the state file itself, no config needed",
) -> None:
    """`--config FILE` (default `$DLI_MONITOR_CONFIG`) or `--state PATH`: where the state is."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--config", default=os.environ.get(CONFIG_ENV), help=config_help)
    where.add_argument("--state", default=None, help=state_help)


def _add_migrate_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`state migrate --to URL`: the SQLite file's rows into an empty PostgreSQL store."""
    migrate = actions.add_parser(
        "migrate",
        help="copy every table of the state file into an empty PostgreSQL database, in one"
        " transaction, and check the row counts (stop the daemon first)",
    )
    migrate.add_argument(
        "--to",
        required=True,
        metavar="URL",
        type=_postgres_target,
        help="postgresql://user@host:port/db, without a password",
    )
    migrate.add_argument(
        "--password-file",
        default=None,
        metavar="FILE",
        help="file holding the database password (default: $PGPASSWORD or ~/.pgpass)",
    )
    _add_state_source(migrate)
    add_shard_arguments(migrate, "target")


def _postgres_target(text: str) -> str:
    """An argparse type: a `postgresql://` URL without a password."""
    try:
        return postgres_url(text.strip(), password_hint="--password-file")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_explain_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`explain JOB`: a job's observed history and every notification decision, read-only."""
    explain = commands.add_parser(
        "explain",
        help="show what the monitor saw of a job and what it sent (or why not); read-only",
    )
    explain.add_argument("job", metavar="JOB", help="a job id, or a job name (its newest runs)")
    _add_state_source(
        explain,
        config_help=f"config file naming the state (default: ${CONFIG_ENV}); its rules are used",
        state_help="the SQLite state file itself",
    )
    explain.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    explain.add_argument(
        "--runs", type=_positive_int, default=3, metavar="N", help="runs of a name (default 3)"
    )
    add_shard_arguments(explain, "operator")


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def explain_command(args: argparse.Namespace) -> int:
    """Run `explain`: exit 1 when the job is unknown or the state unreadable, 2 for bad usage."""
    from monitor.config.rules import RulesSettings
    from monitor.explain import explain

    valid, settings = _named_config(args)
    if not valid:
        return EXIT_CONFIG
    location: str | Path = args.state if settings is None else settings.state.location
    password = None if settings is None else settings.state.password_value()
    rules = RulesSettings() if settings is None else settings.rules
    scopes = state_scopes(args, postgres=is_postgres_url(location))
    if scopes is None:
        return EXIT_CONFIG

    async def answer() -> int:
        usable = await usable_scopes(location, password, scopes)
        if not usable:
            return EXIT_FAILURE
        now = utc_now()
        found: list[tuple[ShardScope, Explanation]] = []
        async with shard_stores(location, password, usable, read_only=True) as stores:
            for scope, store in stores:
                told = await explain(store, args.job, now=now, runs=args.runs, rules=rules)
                found += [] if told is None else [(scope, told)]
        if not found:
            shards = ", ".join(str(scope.shard) for scope in usable if scope.label)
            where = f"{location} (shards {shards})" if shards else str(location)
            sys.stderr.write(f"error: no job with id or name {args.job!r} in {where}\n")
            return EXIT_FAILURE
        sys.stdout.write(_explained(found, as_json=args.json))
        return EXIT_OK

    try:
        return asyncio.run(answer())
    except StoreError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_FAILURE


def _explained(found: Sequence[tuple[ShardScope, Explanation]], *, as_json: bool) -> str:
    """What `explain` prints: the one answer as always, or each shard's answer with its shard
    (text: a heading per shard; JSON: a list of answers, each with `shard` and `schema`)."""
    from monitor.explain import to_json
    from monitor.explain_render import render_text

    if not found[0][0].label:
        ((_, only),) = found
        return json.dumps(to_json(only), indent=2) + "\n" if as_json else render_text(only)
    if as_json:
        shards = [
            {"shard": str(scope.shard), "schema": scope.schema, **to_json(told)}
            for scope, told in found
        ]
        return json.dumps(shards, indent=2) + "\n"
    return "\n".join(
        f"{scope.label} (schema {scope.schema}):\n{render_text(told)}" for scope, told in found
    )


def _named_config(args: argparse.Namespace) -> tuple[bool, Settings | None]:
    """The config of a command that takes `--config` or `--state FILE`: (True, None) with
    `--state`; (False, None) after printing why the config is invalid."""
    if args.state is not None:
        return True, None
    settings = load_config(args.config)
    return settings is not None, settings


def _state_file(args: argparse.Namespace, settings: Settings | None) -> str | None:
    """The SQLite file a `state` action works on: `--state` (`settings` is then None), or the
    config's `state.path`; None after printing why there is none."""
    if settings is None:
        return str(args.state)
    if settings.state.url is not None:
        sys.stderr.write(
            "error: the config keeps its state in PostgreSQL (state.url), not in a file;"
            " name the SQLite file with --state\n"
        )
        return None
    if str(settings.state.path) == ":memory:":
        sys.stderr.write("error: the config keeps its state in memory (state.path)\n")
        return None
    return str(settings.state.path)


def state_migrate(args: argparse.Namespace) -> int:
    """Run `state migrate`: exit 1 when it failed or the counts differ, 2 for bad usage."""
    from monitor.store.migrate import migrate_sqlite_to_postgres

    target = shard_scope(args)
    if target is None:
        return EXIT_CONFIG
    valid, settings = _named_config(args)
    path = _state_file(args, settings) if valid else None
    if path is None:
        return EXIT_CONFIG
    password = None
    if args.password_file is not None:
        try:
            password = Path(args.password_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            sys.stderr.write(f"error: cannot read --password-file {args.password_file}: {exc}\n")
            return EXIT_CONFIG
        add_secrets({password})
    migrating = migrate_sqlite_to_postgres(path, args.to, password=password, schema=target.schema)
    try:
        report = asyncio.run(migrating)
    except StoreError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_FAILURE
    sys.stdout.write("".join(f"{line}\n" for line in report.lines()))
    return EXIT_OK if report.ok else EXIT_FAILURE


def state_check(args: argparse.Namespace) -> int:
    """Run `state check`: exit 1 when the state is not ok, 2 when the config or flags are
    invalid. A SQLite file as always; with `state.url`, the database's schema (with
    `--total-shards`, each shard's)."""
    if shards_from_args(args) is None:
        return EXIT_CONFIG
    valid, settings = _named_config(args)
    if not valid:
        return EXIT_CONFIG
    if settings is not None and settings.state.url is not None:
        return _check_schemas(args, settings.state.url, settings.state.password_value())
    path = _state_file(args, settings)
    if path is None:
        return EXIT_CONFIG
    report = inspect_state(path)
    sys.stdout.write("".join(f"{line}\n" for line in report.lines()))
    return EXIT_OK if report.ok else EXIT_FAILURE


def _check_schemas(args: argparse.Namespace, url: str, password: str | None) -> int:
    """`state check` of each shard's PostgreSQL schema, read-only; exit 1 when one is not ok."""
    from monitor.store.postgres.inspect import inspect_schema

    scopes = state_scopes(args, postgres=True) or ()

    async def check() -> list[tuple[ShardScope, SchemaReport]]:
        return [(s, await inspect_schema(url, password=password, schema=s.schema)) for s in scopes]

    try:
        reports = asyncio.run(check())
    except StoreError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_FAILURE
    for scope, report in reports:
        heading, indent = (f"{scope.label}:\n", "  ") if scope.label else ("", "")
        sys.stdout.write(heading + "".join(f"{indent}{line}\n" for line in report.lines()))
    bad = [str(scope.shard) for scope, report in reports if not report.ok]
    if len(reports) > 1:
        verdict = f"NOT ok: shard(s) {', '.join(bad)}" if bad else "all ok"
        sys.stdout.write(f"{len(reports)} shards checked: {verdict}\n")
    return EXIT_FAILURE if bad else EXIT_OK


def load_config(path: str | None) -> Settings | None:
    """Load and validate the config; print every problem and return None when invalid."""
    if not path:
        sys.stderr.write(f"error: no config file: pass --config FILE or set ${CONFIG_ENV}\n")
        return None
    try:
        settings = load_settings(Path(path))
    except ConfigError as exc:
        sys.stderr.write(f"error: invalid configuration in {path}:\n")
        for problem in exc.problems:
            sys.stderr.write(f"  {problem}\n")
        return None
    add_secrets(secret_values(settings))
    return settings
