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
    "codec": {"models", "models_explain"},
    "diff": {"models"},
    "rules": {"models", "config"},
    "models_silence": {"models"},
    "models_explain": {"models"},
    "store": {"models", "models_silence", "models_explain", "codec", "store", "leader"},
    "leader": {"leader"},
    "shard": set(),
    "shard_state": {"shard"},
    "silences": {"models", "models_silence"},
    "routing": {"models", "models_explain", "silences", "config"},
    "metrics": {
        "models",
        "config",
        "metrics_api",
        "metrics_targets",
        "metrics_events",
        "metrics_outbox",
        "metrics_jobs",
        "metrics_poll",
        "metrics_delivery",
        "metrics_projects",
    },
    "metrics_api": {"models", "metrics_jobs"},
    "metrics_targets": {"models", "metrics_jobs", "metrics_projects"},
    "metrics_events": {"models", "metrics_jobs"},
    "metrics_outbox": {"metrics_projects"},
    "metrics_delivery": {"models"},
    "metrics_jobs": {"models"},
    "metrics_poll": {"models", "metrics_jobs"},
    "metrics_projects": {"models", "metrics_jobs"},
    "health": {"models"},
    "dli": {"models", "redact", "retry_after", "dli"},
    "sinks": {"models", "redact", "retry_after", "codec", "sinks"},
    "ratelimit": {"models"},
    "dispatch_policy": {"models", "store", "sinks"},
    "dispatch_outcomes": {"models", "store", "sinks", "dispatch_policy"},
    "dispatch": {"models", "store", "sinks", "ratelimit", "dispatch_policy", "dispatch_outcomes"},
    "server": {"models", "metrics", "health"},
    "poll": {
        "models",
        "models_explain",
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
        "pipeline",
        "shard",
        "shard_state",
        "leadership",
        "status_sinks",
        "daemon_jobs",
        "server_wiring",
    },
    "daemon_jobs": {"config", "leadership", "models", "pipeline", "scheduler", "sinks", "store"},
    "server_wiring": {
        "config",
        "explain",
        "health",
        "leadership",
        "leadership_probes",
        "metrics",
        "models",
        "pipeline",
        "server",
        "shard",
        "status_sinks",
        "status_wiring",
        "store",
    },
    "status_page": {
        "config",
        "explain",
        "models",
        "models_explain",
        "rules",
        "status_sinks",
        "store",
    },
    "status_sinks": {"models", "models_explain", "ratelimit", "store"},
    "status_markup": {"config", "explain_rules"},
    "status_html": {"explain", "models_explain", "status_markup", "status_page", "status_sinks"},
    "status_wiring": {
        "config",
        "metrics",
        "models",
        "pipeline",
        "server",
        "status_html",
        "status_page",
        "status_sinks",
        "wiring",
    },
    "leadership_changes": set(),
    "leadership": {
        "config",
        "health",
        "leader",
        "leadership_changes",
        "models",
        "shard_state",
        "store",
    },
    "leadership_probes": {"health", "leadership"},
    "pipeline": {
        "models",
        "config",
        "diff",
        "dli",
        "store",
        "dispatch",
        "metrics",
        "health",
        "poll",
        "routing",
        "scheduler",
        "shard",
        "wiring",
        "redact",
    },
    "wiring": {"config", "dli", "models", "ratelimit", "sinks"},
    "demo": {"app", "config", "server", "simulator"},
    "preview": {"app", "wiring", "config", "models", "sinks", "codec"},
    "explain_rules": {"models", "models_explain", "rules", "config"},
    "explain": {"models", "models_explain", "store", "config", "codec", "explain_rules"},
    "explain_render": {"explain", "explain_rules", "models_explain"},
    "cli_shards": {"shard", "shard_state", "store"},
    "cli_silence": {"cli_shards", "cli_store", "config", "models", "silences", "store"},
    "cli_store": {
        "cli_shards",
        "config",
        "logs",
        "models",
        "store",
        "silences",
        "explain",
        "explain_render",
    },
    "cli": {
        "cli_shards",
        "cli_silence",
        "cli_store",
        "config",
        "logs",
        "app",
        "demo",
        "models",
        "store",
        "silences",
        "preview",
        "shard",
    },
}


def _module_key(path: Path) -> str:
    """The table key: the top-level module or subpackage under monitor/."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    """The module a `from ... import` names, with a relative one resolved against `path`."""
    if node.level == 0:
        return node.module or ""
    package = ["monitor", *path.relative_to(PACKAGE).parent.parts]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _monitor_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            names = [module]
            if module == "monitor":
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


STORE_MAY_IMPORT = {"models", "models_silence", "models_explain", "codec", "store", "leader"}
"""The store persists domain values only: it takes nothing from the layers above it."""


def test_the_store_takes_nothing_from_the_layers_above_it() -> None:
    assert ALLOWED["store"] == STORE_MAY_IMPORT
    sources = [p for p in SOURCES if _module_key(p) == "store"]
    assert len(sources) > 5  # the package and its backends, not an empty match
    imported = set().union(*(_monitor_imports(p) for p in sources))
    assert imported <= STORE_MAY_IMPORT, sorted(imported - STORE_MAY_IMPORT)


def test_a_relative_import_is_seen_like_an_absolute_one() -> None:
    fake = PACKAGE / "store" / "sqlite" / "outbox.py"
    node = ast.parse("from ...silences import Silence").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _absolute(fake, node) == "monitor.silences"


def test_the_differ_stays_pure() -> None:
    source = (PACKAGE / "diff.py").read_text()
    for word in ("import asyncio", "import structlog", "import logging", "utc_now()", "aiohttp"):
        assert word not in source
