"""Every YAML example in the README and the docs is a config the monitor accepts.

A block that is a whole config (it has `dli:`) is validated as it is; a block of sinks, or of
routes and sinks, is validated inside a minimal config. `${NAME}` references get plausible
values (a URL for names ending in `URL`), and the only problems allowed are `*_file` secrets
that do not exist on this machine (`/run/secrets/...`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import ConfigError, parse_settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.M | re.S)
MINIMAL = {
    "dli": {
        "endpoint": "https://dli.cn-north-4.myhuaweicloud.com",
        "project_id": "48cc2c48765f481480c7db940d6409d1",
        "auth": {"type": "none"},
    },
    "queues": ["etl"],
}


class Environ(dict[str, str]):
    """Any variable a documented example names, with a plausible value."""

    def __missing__(self, name: str) -> str:
        return "https://hooks.example.com/x" if name.endswith("URL") else f"value-of-{name}"

    def __contains__(self, name: object) -> bool:
        return True

    def get(self, name: str, default: Any = None) -> str:  # type: ignore[override]
        return self[name]


def examples() -> Iterator[Any]:
    for page in PAGES:
        for number, match in enumerate(BLOCK.finditer(page.read_text(encoding="utf-8"))):
            yield pytest.param(page, match.group(1), id=f"{page.name}#{number}")


def as_config(example: object) -> dict[str, Any]:
    """The example as a whole config: itself, or inside the minimal one."""
    if isinstance(example, list):
        return {**MINIMAL, "sinks": example}
    assert isinstance(example, dict)
    return example if "dli" in example else {**MINIMAL, **example}


@pytest.mark.parametrize(("page", "text"), list(examples()))
def test_the_example_is_a_config_the_monitor_accepts(page: Path, text: str) -> None:
    example = yaml.safe_load(text)
    try:
        parse_settings(as_config(example), Environ())
    except ConfigError as exc:
        unreadable = [p for p in exc.problems if "_file" in p.split(":", 1)[0]]
        assert unreadable == exc.problems, exc.problems


def test_there_are_examples_to_check() -> None:
    assert len(list(examples())) >= 12
