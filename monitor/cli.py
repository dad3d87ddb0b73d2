"""The `dli-monitor` command line: argument parsing, logging set-up and exit codes.

Commands: `run`, `once`, `check-config`, `render`, `test-sink`, `demo`, `simulate`,
`silence add|list|expire`, `state check|migrate`. `run` and `once` take `--shard I
--total-shards N` (or `--total-shards N` alone: the shard is the StatefulSet ordinal in
`POD_NAME`).
Exit codes: 0 success, 1 a runtime failure (for `once`: a target failed to poll), 2 invalid
configuration or usage.
Everything that does work lives elsewhere; this module only parses and dispatches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from monitor import __version__
from monitor.config import (
    ConfigError,
    Settings,
    describe_projects,
    load_settings,
    parse_duration,
    render_effective,
    secret_values,
)
from monitor.config.models import postgres_url
from monitor.logs import add_secrets, configure
from monitor.models import utc_now
from monitor.shard import Shard, resolve_shard
from monitor.silences import Silence, SilenceError, compile_job_name
from monitor.store import StoreError, open_store
from monitor.store.sqlite import inspect_state

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
CONFIG_ENV = "DLI_MONITOR_CONFIG"

log = structlog.get_logger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="dli-monitor",
        description="Watch Huawei Cloud DLI Spark batch jobs and report their state changes.",
    )
    parser.add_argument("--version", action="version", version=f"dli-monitor {__version__}")
    parser.add_argument(
        "--log-format",
        choices=["json", "console"],
        default=None,
        help="log format (default: console on a terminal, JSON otherwise)",
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for name, text in (
        ("run", "run the daemon until SIGTERM/SIGINT"),
        ("once", "poll every queue once, deliver, print a summary"),
        ("check-config", "validate the config and print it with secrets masked"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument(
            "--config",
            default=os.environ.get(CONFIG_ENV),
            help=f"config file (default: ${CONFIG_ENV})",
        )
        if name != "check-config":
            _add_shard_arguments(sub)

    demo = commands.add_parser(
        "demo", help="run the monitor against the built-in simulator, no config needed"
    )
    demo.add_argument("--listen", default="127.0.0.1:9108", help="metrics address")
    demo.add_argument("--interval", default="5s", help="poll interval")
    demo.add_argument("--state", default=None, help="state file (default: a temporary one)")

    _add_silence_parser(commands)
    _add_state_parser(commands)
    _add_sink_parsers(commands)

    simulate = commands.add_parser("simulate", help="run the DLI simulator alone")
    simulate.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to serve on")
    simulate.add_argument("--scenario", default=None, help="scenario YAML (default: the demo)")
    simulate.add_argument("--project-id", default="demo0000000000000000000000000000")
    simulate.add_argument(
        "--auth",
        choices=["none", "aksk", "token"],
        default="none",
        help="none; aksk (--access-key AK --secret-key SK); token: IAM tokens from "
        "POST /v3/auth/tokens (--access-key DOMAIN/USER --secret-key PASSWORD)",
    )
    simulate.add_argument("--access-key", default=os.environ.get("SIM_ACCESS_KEY"))
    simulate.add_argument("--secret-key", default=os.environ.get("SIM_SECRET_KEY"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dli-monitor` script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(args.log_format, args.log_level)
    try:
        return _dispatch(args, parser)
    except KeyboardInterrupt:
        return EXIT_OK


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "demo":
        from monitor.demo import run_demo

        return asyncio.run(run_demo(listen=args.listen, interval=args.interval, state=args.state))
    if args.command == "simulate":
        from monitor.demo import run_simulator

        if args.auth == "aksk" and not (args.access_key and args.secret_key):
            parser.error("--auth aksk needs --access-key and --secret-key")
        if args.auth == "token" and not (args.secret_key and "/" in (args.access_key or "")):
            parser.error("--auth token needs --access-key DOMAIN/USER and --secret-key PASSWORD")
        return asyncio.run(
            run_simulator(
                listen=args.listen,
                scenario=args.scenario,
                project_id=args.project_id,
                auth=args.auth,
                access_key=args.access_key,
                secret_key=args.secret_key,
            )
        )
    if args.command == "state":
        if args.state_command == "migrate":
            return _state_migrate(args)
        return _state_check(args)
    settings = _load(args.config)
    if settings is None:
        return EXIT_CONFIG
    if args.command == "check-config":
        sys.stdout.write(render_effective(settings))
        sys.stdout.write(describe_projects(settings))
        sys.stdout.write("config is valid\n")
        return EXIT_OK
    if args.command == "silence":
        return _silence(args, settings)
    if args.command in ("render", "test-sink"):
        return _sink_command(args, settings)
    shard = _shard(args)
    if shard is None:
        return EXIT_CONFIG
    from monitor import app

    if args.command == "once":
        report = asyncio.run(app.run_once(settings, shard=shard))
        for result in report.results:
            status = "ok" if result.ok else f"FAILED: {result.error}"
            baseline = " (baseline)" if result.baseline else ""
            sys.stdout.write(
                f"{result.target}: {status}; {result.jobs} jobs, {result.events} events{baseline}\n"
            )
        sys.stdout.write(
            f"delivered {report.delivered}, failed {report.failed}, pending {report.pending}\n"
        )
        return EXIT_OK if report.ok else EXIT_FAILURE
    return asyncio.run(app.run(settings, shard=shard))


def _add_shard_arguments(sub: argparse.ArgumentParser) -> None:
    """`--shard` and `--total-shards`: watch only the targets that hash to this shard."""
    sub.add_argument(
        "--shard",
        type=int,
        default=None,
        metavar="I",
        help="this process's shard, 0..N-1 (default with --total-shards: the ordinal in POD_NAME)",
    )
    sub.add_argument(
        "--total-shards",
        type=int,
        default=None,
        metavar="N",
        help="how many shards split the targets (default: 1, this process watches all)",
    )


def _shard(args: argparse.Namespace) -> Shard | None:
    """The shard the flags (and `POD_NAME`) name; None after printing why they do not fit."""
    try:
        return resolve_shard(args.shard, args.total_shards, os.environ.get("POD_NAME"))
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return None


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


def _add_silence_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_state_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _state_file(args: argparse.Namespace) -> str | None:
    """The SQLite file a `state` action works on: `--state`, or the config's `state.path`."""
    if args.state is not None:
        return str(args.state)
    settings = _load(args.config)
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


def _state_migrate(args: argparse.Namespace) -> int:
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


def _state_check(args: argparse.Namespace) -> int:
    """Run `state check`: exit 1 when the file is not ok, 2 when the config is invalid."""
    path = _state_file(args)
    if path is None:
        return EXIT_CONFIG
    report = inspect_state(path)
    sys.stdout.write("".join(f"{line}\n" for line in report.lines()))
    return EXIT_OK if report.ok else EXIT_FAILURE


def _add_sink_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`render` (show a sink's message without sending) and `test-sink` (send a test)."""
    render = commands.add_parser(
        "render", help="print the body a sink would send for an event, without sending it"
    )
    render.add_argument("--sink", required=True, help="the sink's name in the config")
    render.add_argument(
        "--event",
        default="sample",
        help="sample, sample-digest, or a JSON file with an event or a list of events",
    )
    test = commands.add_parser(
        "test-sink", help="send a marked test message to every sink (or one) and report"
    )
    test.add_argument("--sink", default=None, help="only this sink (default: every sink)")
    for sub in (render, test):
        sub.add_argument(
            "--config",
            default=os.environ.get(CONFIG_ENV),
            help=f"config file (default: ${CONFIG_ENV})",
        )


def _sink_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run `render` or `test-sink`; exit 1 when a test failed, 2 for an unknown sink."""
    from monitor import preview

    try:
        if args.command == "render":
            sys.stdout.write(asyncio.run(preview.render_body(settings, args.sink, args.event)))
            return EXIT_OK
        names = [args.sink] if args.sink else []
        outcomes = asyncio.run(preview.send_test_messages(settings, names))
    except preview.PreviewError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_CONFIG
    for outcome in outcomes:
        sys.stdout.write(outcome.line() + "\n")
    return EXIT_OK if all(outcome.ok for outcome in outcomes) else EXIT_FAILURE


def _silence(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `silence` action against the state file of `settings`."""
    return asyncio.run(_silence_action(args, settings))


async def _silence_action(args: argparse.Namespace, settings: Settings) -> int:
    """`_silence` on the event loop: the store's API is async."""
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


def _load(path: str | None) -> Settings | None:
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
