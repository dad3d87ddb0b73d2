"""`python -m monitor.config`: print the config reference table, or refresh it in the docs.

Without arguments the Markdown table from `reference_table` goes to standard output. With
`--update-docs PATH` (docs/configuration.md) the part of that file between the
`config-reference` start and end markers is replaced by the table, so the docs never drift from
the field descriptions (`tests/docs/test_config_reference.py` fails when they do).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor.config.docs import reference_table

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"


def replace_reference(text: str, table: str) -> str:
    """`text` with everything between the markers replaced by `table` (ValueError: no markers)."""
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"no {START} ... {END} section")
    return f"{head}{START}\n\n{table}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the reference table, or rewrite it in the file given to `--update-docs`."""
    parser = argparse.ArgumentParser(
        prog="python -m monitor.config", description="The config file's reference table."
    )
    parser.add_argument(
        "--update-docs",
        metavar="PATH",
        type=Path,
        help="rewrite the table between the config-reference markers of this Markdown file",
    )
    args = parser.parse_args(argv)
    if args.update_docs is None:
        sys.stdout.write(reference_table())
        return 0
    path: Path = args.update_docs
    try:
        text = path.read_text(encoding="utf-8")
        updated = replace_reference(text, reference_table())
    except (OSError, ValueError) as exc:
        reason = (exc.strerror or type(exc).__name__) if isinstance(exc, OSError) else str(exc)
        parser.error(f"{path}: {reason}")
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
