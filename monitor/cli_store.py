"""The `silence`, `state` and `explain` subcommands of `dli-monitor`: their parsers and their
actions over the store, and the config loading and exit codes every command shares."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.config import ConfigError, Settings, load_settings, parse_duration, secret_values
from monitor.config.models import postgres_url
from monitor.logs import add_secrets
from monitor.models import utc_now
from monitor.silences import Silence, SilenceError, compile_job_name
from monitor.store import StoreError, open_reader, open_store
from monitor.store.sqlite import inspect_state

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
CONFIG_ENV = "DLI_MONITOR_CONFIG"


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
    """`silence add|list|expire`: silences stored in the state file named by the config."""
    silence = commands.add_parser(
        "silence", help="mute notifications for matching jobs (stored in the state file)"
    )
    actions = silence.add_subparsers(dest="silence_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a silence")
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
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id", type=int, help="the silence id shown by `silence list`")
    for sub in (add, listing, expire):
        sub.add_argument(
            "--config",
            default=os.environ.get(CONFIG_ENV),
            help=f"config file (default: ${CONFIG_ENV})",
        )


def add_state_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`state check`: inspect the state file read-only (safe while the daemon runs);
    `state migrate`: copy the state file into an empty PostgreSQL database."""
    state = commands.add_parser("state", help="inspect the state file, or move it to PostgreSQL")
    actions = state.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="print version, integrity, row counts and pending deliveries; exit 1 when not ok",
    )
    where = check.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        default=os.environ.get(CONFIG_ENV),
        help=f"config file naming the state file (default: ${CONFIG_ENV})",
    )
    where.add_argument("--state", default=None, help="the state file itself, no config needed")
    _add_migrate_parser(actions)


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
    where = migrate.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        default=os.environ.get(CONFIG_ENV),
        help=f"config file naming the state file (default: ${CONFIG_ENV})",
    )
    where.add_argument("--state", default=None, help="the state file itself, no config needed")


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
    where = explain.add_mutually_exclusive_group()
    where.add_argument(
        "--config",
        default=os.environ.get(CONFIG_ENV),
        help=f"config file naming the state (default: ${CONFIG_ENV}); its rules are used",
    )
    where.add_argument("--state", default=None, help="the SQLite state file itself")
    explain.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    explain.add_argument(
        "--runs", type=_positive_int, default=3, metavar="N", help="runs of a name (default 3)"
    )


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
    from monitor.explain import explain, to_json
    from monitor.explain_render import render_text

    settings = None if args.state is not None else load_config(args.config)
    if args.state is None and settings is None:
        return EXIT_CONFIG
    location: str | Path = args.state if settings is None else settings.state.location
    password = None if settings is None else settings.state.password_value()
    rules = RulesSettings() if settings is None else settings.rules

    async def answer() -> int:
        store = await open_reader(location, password=password)
        try:
            found = await explain(store, args.job, now=utc_now(), runs=args.runs, rules=rules)
        finally:
            await store.close()
        if found is None:
            sys.stderr.write(f"error: no job with id or name {args.job!r} in {location}\n")
            return EXIT_FAILURE
        text = json.dumps(to_json(found), indent=2) + "\n" if args.json else render_text(found)
        sys.stdout.write(text)
        return EXIT_OK

    try:
        return asyncio.run(answer())
    except StoreError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_FAILURE


def _state_file(args: argparse.Namespace) -> str | None:
    """The SQLite file a `state` action works on: `--state`, or the config's `state.path`."""
    if args.state is not None:
        return str(args.state)
    settings = load_config(args.config)
    if settings is None:
        return None
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

    path = _state_file(args)
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
    try:
        report = asyncio.run(migrate_sqlite_to_postgres(path, args.to, password=password))
    except StoreError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_FAILURE
    sys.stdout.write("".join(f"{line}\n" for line in report.lines()))
    return EXIT_OK if report.ok else EXIT_FAILURE


def state_check(args: argparse.Namespace) -> int:
    """Run `state check`: exit 1 when the file is not ok, 2 when the config is invalid."""
    path = _state_file(args)
    if path is None:
        return EXIT_CONFIG
    report = inspect_state(path)
    sys.stdout.write("".join(f"{line}\n" for line in report.lines()))
    return EXIT_OK if report.ok else EXIT_FAILURE


def silence_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `silence` action against the state file of `settings`."""
    return asyncio.run(_silence_action(args, settings))


async def _silence_action(args: argparse.Namespace, settings: Settings) -> int:
    """`silence_command` on the event loop: the store's API is async."""
    now = utc_now()
    if args.silence_command == "add":
        try:
            scope = Silence.scoped(args.queue, args.project)
        except SilenceError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return EXIT_CONFIG
    store = await open_store(settings.state.location, password=settings.state.password_value())
    try:
        if args.silence_command == "add":
            added = await store.add_silence(
                job_name=args.job_name,
                queue=scope,
                starts_at=now,
                ends_at=now + timedelta(seconds=args.duration),
                comment=args.comment,
            )
            sys.stdout.write(f"silence {added.id} added, until {_iso(added.ends_at)}\n")
            return EXIT_OK
        if args.silence_command == "expire":
            try:
                ended = await store.expire_silence(args.id, now)
            except KeyError:
                sys.stderr.write(f"error: no silence with id {args.id}\n")
                return EXIT_FAILURE
            sys.stdout.write(f"silence {args.id} {'expired' if ended else 'had already ended'}\n")
            return EXIT_OK
        shown = [s for s in await store.list_silences() if args.all or s.ends_at > now]
        sys.stdout.write("ID\tSTATUS\tUNTIL\tPROJECT\tQUEUE\tJOB-NAME\tCOMMENT\n")
        for item in shown:
            status = "active" if item.is_active(now) else "expired"
            project, queue = item.project_glob or "*", item.queue_glob or "*"
            sys.stdout.write(
                f"{item.id}\t{status}\t{_iso(item.ends_at)}\t{project}\t{queue}"
                f"\t{item.job_name}\t{item.comment}\n"
            )
        return EXIT_OK
    finally:
        await store.close()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
