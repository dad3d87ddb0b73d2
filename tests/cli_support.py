"""Running the real `dli-monitor` command line in a subprocess, and configs for commands that
never reach DLI, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any


def run_cli(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    """`python -m monitor ARGS` without `$DLI_MONITOR_CONFIG`: (exit code, stdout, stderr)."""
    env = {key: value for key, value in os.environ.items() if key != "DLI_MONITOR_CONFIG"}
    done = subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


OFFLINE_DLI = {"endpoint": "http://127.0.0.1:1", "auth": {"type": "none"}}
"""A `dli:` mapping nothing will reach (port 1): for commands that never poll."""


def offline_config(project_id: str = "p1", **extra: Any) -> dict[str, Any]:
    """A valid config for queue `etl` of an unreachable DLI; `extra` adds or replaces keys."""
    return {"dli": {**OFFLINE_DLI, "project_id": project_id}, "queues": ["etl"], **extra}
