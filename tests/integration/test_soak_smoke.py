"""Smoke test of the fault soak: a short seeded soak loses, doubles and invents nothing.

Runs `python -m benchmarks.soak` as a subprocess (simulator process with IAM tokens, real
daemon killed and restarted, faulty webhook receiver, all on loopback) and reads its JSON. The
seed's schedule has every fault kind but the long receiver outage (runs under 4 minutes have
none): SIGKILL at random and mid-listing, mid-delivery and between commit and delivery,
SIGTERM, DLI 5xx bursts, dropped connections, revoked tokens, receiver outages, wall-clock
jumps both ways when libfaketime is installed (Debian package `faketime`; with
``REQUIRE_TOOLS=1`` it must be), and a full disk under the state file when it runs as root
with a tmpfs (else the disk test is skipped, saying why). It asserts correctness only, never
timings. The soak runs once per module; both tests read its report.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.soak_clock import find_libfaketime

REPO = Path(__file__).resolve().parents[2]
SEED = 1
MINUTES = 1.75
MUST_HAVE = (
    "sigkill", "sigterm", "dli_5xx", "sink_down", "dli_reset", "revoke_tokens",
    "sigkill_listing", "sigkill_delivery", "sigkill_commit",
)  # fmt: skip


@pytest.fixture(scope="module")
def soak_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, int]:
    """The seeded soak's report, its output, and its exit code."""
    if find_libfaketime() is None and os.environ.get("REQUIRE_TOOLS") == "1":
        pytest.fail("libfaketime is required (REQUIRE_TOOLS=1): apt-get install faketime")
    out = tmp_path_factory.mktemp("soak") / "soak.json"
    command = [
        sys.executable, "-m", "benchmarks.soak", "--minutes", str(MINUTES),
        "--seed", str(SEED), "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=840, check=False
    )
    output = done.stdout[-3000:] + done.stderr[-3000:]
    assert out.exists(), output
    return json.loads(out.read_text()), output, done.returncode


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_soak_smoke_loses_doubles_and_invents_nothing(
    soak_run: tuple[dict[str, Any], str, int],
) -> None:
    report, output, returncode = soak_run
    faketime = report["meta"]["libfaketime"] is not None
    summary, faults = report["summary"], report["faults"]
    context = (summary, report["details"]["missed"][:5], report["details"]["false"][:5])
    assert summary["expected"] > 0, context
    assert summary["missed"] == 0, context
    assert summary["false"] == 0, context
    assert summary["duplicates_real"] == 0, (summary, report["details"]["real_duplicates"][:5])
    for kind in (*MUST_HAVE, *(("clock_jump",) if faketime else ())):
        assert faults[kind]["scheduled"] >= 1, kind
    for kind, row in faults.items():
        if row["scheduled"]:
            assert row["injected"] >= 1, (kind, row)
    if faketime:
        offsets = {jump["offset"][0] for jump in report["details"]["clock_jumps"]}
        assert offsets == {"+", "-"}, report["details"]["clock_jumps"]
    else:
        assert "clock_jump" in report["meta"]["not_injected"]
    assert summary["daemon_reauth_retries"] >= 1, summary  # a 401, one new token, a retry
    assert summary["restarts"] >= 5
    assert summary["disk_full_crashes"] == 0, report["details"]["disk_full"]
    assert returncode == 0, output


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_soak_smoke_fills_the_disk_and_the_daemon_says_so(
    soak_run: tuple[dict[str, Any], str, int],
) -> None:
    report, _, _ = soak_run
    summary, meta = report["summary"], report["meta"]
    if meta["disk_skipped"]:
        assert "disk_full" in meta["not_injected"]
        pytest.skip(f"disk_full not injected: {meta['disk_skipped']}")
    episodes = report["details"]["disk_full"]
    assert report["faults"]["disk_full"]["injected"] >= 1, report["faults"]["disk_full"]
    assert summary["disk_full_seen"] >= 1, episodes  # its commit really met ENOSPC
    assert summary["disk_full_recovered"] == summary["disk_full_seen"], episodes
    assert summary["healthz_failed_during_disk_full"] >= 1, episodes
    assert summary["disk_full_metric_counted"] >= 1, episodes
    assert summary["disk_full_crashes"] == 0, episodes


@pytest.mark.parametrize("seed", [1, 3, 7])
def test_the_schedule_keeps_its_spacing_rules(seed: int) -> None:
    from benchmarks import soak_faults as sf

    def kinds(minutes: float, kind: str) -> list[sf.Fault]:
        plan = sf.schedule(seed, minutes * 60, request_timeout=2.0, page_size=20)
        return [fault for fault in plan if fault.kind == kind]

    assert not kinds(3.9, sf.LONG_OUTAGE)
    for minutes in (4, 12, 25):
        outages = kinds(minutes, sf.LONG_OUTAGE)
        assert 1 <= len(outages) <= -(-minutes // 10)
        assert all(60 <= fault.seconds <= 150 for fault in outages)
        assert all(b.at - a.at >= 600 for a, b in itertools.pairwise(outages))
        assert all(fault.at + fault.seconds <= minutes * 60 for fault in outages)
    revokes = [fault.at for fault in kinds(25, "revoke_tokens")]
    assert revokes and all(b - a >= sf.REVOKE_SPACING_S for a, b in itertools.pairwise(revokes))
    offsets = {fault.params["offset"][0] for fault in kinds(3, sf.CLOCK_JUMP)}
    assert offsets == {"+", "-"}
    assert not [
        f
        for f in sf.schedule(seed, 180, request_timeout=2.0, page_size=20, clock_jumps=False)
        if f.kind == sf.CLOCK_JUMP
    ]
    for minutes in (1.4, 2, 3, 10):
        fills = kinds(minutes, sf.DISK_FULL)
        assert 1 <= len(fills) <= minutes * 60 // 90 + 1, fills
        assert all(5 <= fault.seconds <= 20 for fault in fills)
        assert all(fault.at + sf.DISK_ROOM_S <= minutes * 60 for fault in fills)
    without = sf.schedule(seed, 180, request_timeout=2.0, page_size=20, disk_full=False)
    assert not [f for f in without if f.kind == sf.DISK_FULL]
    assert without == [
        f
        for f in sf.schedule(seed, 180, request_timeout=2.0, page_size=20)
        if f.kind != sf.DISK_FULL
    ]  # the other lanes keep their schedules
