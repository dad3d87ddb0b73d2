"""Running the real `dli-monitor` command line in a subprocess, for the CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys


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
