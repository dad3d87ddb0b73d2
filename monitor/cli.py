"""The `dli-monitor` command line: argument parsing, logging set-up and exit codes.

Commands: `run`, `once`, `check-config`, `render`, `test-sink`, `demo`, `simulate`,
`silence add|list|expire`, `state check|migrate`, `explain JOB`. `run` and `once` take
`--shard I --total-shards N` (or `--total-shards N` alone: the shard is the StatefulSet ordinal
in `POD_NAME`); `silence`, `state` and `explain` take them too, to reach sharded PostgreSQL
state (`monitor.cli_shards` resolves them for every command).
Exit codes: 0 success, 1 a runtime failure (for `once`: a target failed to poll), 2 invalid
configuration or usage.
Everything that does work lives elsewhere; this module only parses and dispatches (the
`state` and `explain` commands and the shared config loading are in `monitor.cli_store`,
`silence` in `monitor.cli_silence`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import structlog

from monitor import __version__
from monitor.cli_shards import add_shard_arguments, shard_from_args
from monitor.cli_silence import add_silence_parser, silence_command
from monitor.cli_store import (
    CONFIG_ENV,
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    add_explain_parser,
    add_state_parser,
    explain_command,
    load_config,
    state_check,
    state_migrate,
)
from monitor.config import (
    Settings,
    describe_projects,
    render_effective,
)
from monitor.logs import configure

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
            add_shard_arguments(sub)

    demo = commands.add_parser(
        "demo", help="run the monitor against the built-in simulator, no config needed"
    )
    demo.add_argument("--listen", default="127.0.0.1:9108", help="metrics address")
    demo.add_argument("--interval", default="5s", help="poll interval")
    demo.add_argument("--state", default=None, help="state file (default: a temporary one)")

    add_silence_parser(commands)
    add_state_parser(commands)
    add_explain_parser(commands)
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
            return state_migrate(args)
        return state_check(args)
    if args.command == "explain":
        return explain_command(args)
    settings = load_config(args.config)
    if settings is None:
        return EXIT_CONFIG
    if args.command == "check-config":
        sys.stdout.write(render_effective(settings))
        sys.stdout.write(describe_projects(settings))
        sys.stdout.write("config is valid\n")
        return EXIT_OK
    if args.command == "silence":
        return silence_command(args, settings)
    if args.command in ("render", "test-sink"):
        return _sink_command(args, settings)
    shard = shard_from_args(args)
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
