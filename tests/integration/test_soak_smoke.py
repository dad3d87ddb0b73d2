"""Smoke test of the fault soak: a short seeded soak loses, doubles and invents nothing.

Runs `python -m benchmarks.soak` as a subprocess (simulator process, real daemon killed and
restarted, faulty webhook receiver, all on loopback) and reads its JSON. The seed's schedule
has at least one SIGKILL, one SIGTERM, DLI 5xx bursts and receiver outages. It asserts
correctness only, never timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SEED = 3
MINUTES = 1.75
MUST_HAVE = ("sigkill", "sigterm", "dli_5xx", "sink_down")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_soak_smoke_loses_doubles_and_invents_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    command = [
        sys.executable, "-m", "benchmarks.soak", "--minutes", str(MINUTES),
        "--seed", str(SEED), "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=840, check=False
    )
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    summary, faults = report["summary"], report["faults"]
    context = (summary, report["details"]["missed"][:5], report["details"]["false"][:5])
    assert summary["expected"] > 0, context
    assert summary["missed"] == 0, context
    assert summary["false"] == 0, context
    assert summary["duplicates_real"] == 0, (summary, report["details"]["real_duplicates"][:5])
    for kind in MUST_HAVE:
        assert faults[kind]["scheduled"] >= 1, kind
    for kind, row in faults.items():
        if row["scheduled"]:
            assert row["injected"] >= 1, (kind, row)
    assert summary["restarts"] >= 2
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
