"""The config reference in docs/configuration.md: generated from the models, so it cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from monitor.config import reference_table
from monitor.config.__main__ import END, START, main

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"
EXAMPLE = ROOT / "deploy" / "base" / "example-config.yaml"


def _section(text: str) -> str:
    """The text between the config-reference markers (which must appear exactly once)."""
    assert text.count(START) == 1
    assert text.count(END) == 1
    return text.split(START, 1)[1].split(END, 1)[0]


def test_the_reference_section_is_the_generated_table() -> None:
    section = _section(PAGE.read_text(encoding="utf-8"))
    assert section.strip("\n") + "\n" == reference_table(), (
        "docs/configuration.md is stale: run "
        "`python -m monitor.config --update-docs docs/configuration.md`"
    )


def test_every_top_level_key_of_the_example_config_is_documented() -> None:
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    section = _section(PAGE.read_text(encoding="utf-8"))
    assert isinstance(example, dict)
    assert len(example) >= 5
    missing = [key for key in example if f"| `{key}` |" not in section]
    assert missing == []


def test_every_row_of_the_reference_table_has_exactly_four_cells() -> None:
    rows = reference_table().splitlines()
    assert len(rows) > 10
    for row in rows:
        cells = re.split(r"(?<!\\)\|", row)
        assert cells[0] == "" and cells[-1] == "", row
        assert len(cells) == 6, row


def test_update_docs_rewrites_only_the_marked_section(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text(f"# Title\n\nintro\n\n{START}\n| stale |\n{END}\n\n## After\n", "utf-8")

    assert main(["--update-docs", str(page)]) == 0

    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nintro\n\n")
    assert text.endswith(f"{END}\n\n## After\n")
    assert "stale" not in text
    assert _section(text).strip("\n") + "\n" == reference_table()


def test_update_docs_refuses_a_file_without_markers(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text("# Title\n\nno markers here\n", "utf-8")

    with pytest.raises(SystemExit) as exit_info:
        main(["--update-docs", str(page)])

    assert exit_info.value.code == 2
    assert page.read_text(encoding="utf-8") == "# Title\n\nno markers here\n"


def test_without_arguments_the_table_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out == reference_table()
