"""The cycle benchmark's figures: one `Row` per N, and the tables they are printed as.

`print_machine` says what the figures depend on (Python, platform, libraries, the workload's
shape); `print_rows` prints the baseline, the later cycles and the parts measured alone. How
the figures are taken is `bench_cycle`'s.
"""

from __future__ import annotations

import math
import os
import platform
import sqlite3
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp

from benchmarks.bench_cycle_rig import MIN_CHANGES, PAGE_SIZE, QUEUES


@dataclass
class Row:
    """The figures of one N."""

    jobs: int
    active: int
    base_s: float = 0.0
    base_requests: int = 0
    base_server_s: float = 0.0
    peak_mb: float = 0.0
    rss_mb: float = 0.0
    steady_s: float = 0.0
    steady_requests: int = 0
    steady_server_s: float = 0.0
    changes: int = 0
    change_s: float = 0.0
    change_server_s: float = 0.0
    events: int = 0
    first_delivery_s: float = math.nan
    all_delivered_s: float = math.nan
    delivered: int = 0
    diff_base_us: float = 0.0
    diff_steady_us: float = 0.0
    commit_s: float = 0.0


def print_machine(sizes: Sequence[int]) -> None:
    """Python, platform, CPUs and library versions: what the figures depend on."""
    print(f"python {platform.python_version()} ({platform.python_implementation()})")
    print(f"platform {platform.platform()}, cpus {os.cpu_count()}")
    print(f"aiohttp {aiohttp.__version__}, sqlite {sqlite3.sqlite_version}")
    print(
        f"N = {', '.join(f'{n:,}' for n in sizes)}; queues {len(QUEUES)}; page {PAGE_SIZE};"
        f" active max(2% N, K); K = max(1% N, {MIN_CHANGES}); AK/SK on; state file in"
        f" {tempfile.gettempdir()}"
    )
    print()


def print_rows(rows: Sequence[Row]) -> None:
    """Three tables: the baseline, the later cycles, and the parts measured alone."""
    print("wall seconds; sim_s = inside the simulator's handlers, mon_s = wall - sim_s")
    print()
    print("1. baseline cycle (first poll)")
    print(
        f"{'N':>7} {'active':>6} {'requests':>8} {'wall_s':>7} {'sim_s':>6} {'mon_s':>6}"
        f" {'mon_us/job':>10} {'py_peak_MB':>10} {'maxrss_MB':>9}"
    )
    for r in rows:
        mon = r.base_s - r.base_server_s
        print(
            f"{r.jobs:>7,} {r.active:>6} {r.base_requests:>8} {r.base_s:>7.2f}"
            f" {r.base_server_s:>6.2f} {mon:>6.2f} {mon / r.jobs * 1e6:>10.0f}"
            f" {r.peak_mb:>10.1f} {r.rss_mb:>9.0f}"
        )
    print()
    print(
        "2. steady cycle (unchanged, median of 3)      3. K jobs change state (all_s: cycle start"
        " until the receiver has all K)"
    )
    print(
        f"{'N':>7} {'requests':>8} {'wall_s':>7} {'sim_s':>6} {'mon_s':>6}   {'K':>5}"
        f" {'wall_s':>7} {'sim_s':>6} {'events':>6} {'first_s':>7} {'all_s':>6}"
        f" {'delivered':>9}"
    )
    for r in rows:
        print(
            f"{r.jobs:>7,} {r.steady_requests:>8} {r.steady_s:>7.2f} {r.steady_server_s:>6.2f}"
            f" {r.steady_s - r.steady_server_s:>6.2f}   {r.changes:>5} {r.change_s:>7.2f}"
            f" {r.change_server_s:>6.2f} {r.events:>6} {r.first_delivery_s:>7.2f}"
            f" {r.all_delivered_s:>6.2f} {r.delivered:>9}"
        )
    print()
    print("4./5. parts alone (differ: best of 3, all targets; commit: baseline, fresh file)")
    print(
        f"{'N':>7} {'diff_base_us/job':>16} {'diff_steady_us/job':>18} {'commit_s':>8}"
        f" {'commit_us/job':>13}"
    )
    for r in rows:
        print(
            f"{r.jobs:>7,} {r.diff_base_us:>16.1f} {r.diff_steady_us:>18.1f}"
            f" {r.commit_s:>8.3f} {r.commit_s / r.jobs * 1e6:>13.1f}"
        )
