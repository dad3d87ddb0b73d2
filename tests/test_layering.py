"""Imports flow one way: each module may import only the `monitor` modules listed for it.

The table mirrors the layers in the design: domain values at the bottom, the pure differ and the
I/O adapters above them, the cycle above those, and only the composition root (`app`) and the
command line knowing everything. A new module must be added here, on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "monitor"

ALLOWED: dict[str, set[str]] = {
    "__init__": set(),
    "__main__": {"cli"},
    "models": set(),
    "redact": set(),
    "retry_after": set(),
    "config": {"config", "models", "redact"},
    "logs": {"redact"},
    "codec": {"models"},
    "diff": {"models"},
    "rules": {"models", "config"},
    "store": {"models", "codec", "silences", "store_migrations", "store_file"},
    "store_file": {"store_migrations"},
    "store_migrations": set(),
    "silences": {"models"},
    "routing": {"models", "silences", "config"},
    "metrics": {"models", "config", "metrics_jobs", "metrics_poll", "metrics_delivery"},
    "metrics_delivery": {"models"},
    "metrics_jobs": {"models"},
    "metrics_poll": set(),
    "health": {"models"},
    "dli": {"models", "redact", "retry_after", "dli"},
    "sinks": {"models", "redact", "retry_after", "codec", "sinks"},
    "ratelimit": {"models"},
    "dispatch": {"models", "store", "sinks", "ratelimit"},
    "server": {"models", "metrics", "health"},
    "poll": {
        "models",
        "diff",
        "poll",
        "dli",
        "store",
        "dispatch",
        "metrics",
        "health",
        "routing",
        "rules",
        "config",
    },
    "scheduler": set(),
    "simulator": {"models", "redact", "dli", "simulator"},
    "app": {
        "models",
        "routing",
        "silences",
        "config",
        "diff",
        "dli",
        "store",
        "sinks",
        "dispatch",
        "metrics",
        "health",
        "server",
        "poll",
        "scheduler",
        "redact",
        "ratelimit",
        "wiring",
    },
    "wiring": {"config", "dli", "models", "ratelimit", "sinks"},
    "demo": {"app", "config", "server", "simulator"},
    "preview": {"app", "wiring", "config", "models", "sinks", "codec"},
    "cli": {
        "config",
        "logs",
        "app",
        "demo",
        "models",
        "store",
        "store_file",
        "silences",
        "preview",
    },
}


def _module_key(path: Path) -> str:
    """The table key: the top-level module or subpackage under monitor/."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _monitor_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "monitor":
                names = [f"monitor.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "monitor" and len(parts) > 1:
                found.add(parts[1])
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_the_layer_table() -> None:
    unknown = {_module_key(p) for p in SOURCES} - set(ALLOWED)
    assert not unknown, f"add these modules to ALLOWED on purpose: {sorted(unknown)}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_from_lower_layers(path: Path) -> None:
    key = _module_key(path)
    # `from monitor import __version__` is allowed everywhere.
    imported = _monitor_imports(path) - {"__version__"}
    forbidden = imported - ALLOWED.get(key, set())
    assert not forbidden, f"monitor/{path.relative_to(PACKAGE)} imports {sorted(forbidden)}"


def test_the_differ_stays_pure() -> None:
    source = (PACKAGE / "diff.py").read_text()
    for word in ("import asyncio", "import structlog", "import logging", "utc_now()", "aiohttp"):
        assert word not in source
