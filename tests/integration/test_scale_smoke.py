"""Smoke test of the scale benchmark: scenario S for a few cycles, every event accounted for.

Runs `python -m benchmarks.scale` as a subprocess (simulator process, real daemon, webhook
receiver, all on loopback) and reads its JSON. It asserts correctness only (nothing missed,
nothing extra), never timings or request counts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SMOKE_MODES = ("incremental", "full")
"""The poll modes the smoke run covers, each of which must have run."""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_scale_smoke_run_of_scenario_s_misses_nothing_and_adds_nothing(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    command = [
        sys.executable, "-m", "benchmarks.scale", "--scenarios", "S",
        "--modes", ",".join(SMOKE_MODES), "--cycles", "3", "--interval", "1",
        "--mode-key", "auto", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=280, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = json.loads(out.read_text())["runs"]
    assert sorted(run["mode"] for run in runs) == sorted(SMOKE_MODES)
    for run in runs:
        summary = run["summary"]
        assert summary["expected"] > 0, run["mode"]
        assert (summary["missed"], summary["extra"]) == (0, 0), (run["mode"], run["details"])
