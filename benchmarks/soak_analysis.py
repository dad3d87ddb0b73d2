"""The fault soak's analysis: the receipts matched with the ground truth, the faults counted.

`analyse` reads what a soak left behind (`SoakRun`: the simulator's ground truth and stats, the
supervisor's daemons and kills, the receiver's log, the clock and disk lanes' episodes) and
builds the report: whether anything was missed, false or really duplicated, and per fault kind
how many were scheduled and injected. The semantics of the matching are
`soak_support.account`'s; the printing is `soak_support.print_summary`'s and
`soak_disk.print_disk`'s.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import scale_support as sup
from benchmarks import soak_faults as sf
from benchmarks import soak_kills as kills
from benchmarks.soak_clock import ClockFile
from benchmarks.soak_config import DELIVERY_TIMEOUT_S, PAGE_SIZE, REQUEST_TIMEOUT_S
from benchmarks.soak_disk import DiskLane
from benchmarks.soak_support import (
    Accounting,
    FaultyReceiver,
    account,
    largest_post,
    redeliveries,
)

NOISE = re.compile(r"request_id=\w+|next run at: [^)]*|\d{4}-\d\d-\d\dT[\d:.+]+|by \d+:[\d:.]+")
"""Parts of warning texts left out when counting them by kind."""


@dataclass(frozen=True)
class SoakRun:
    """What one soak ran with and who took part: what the analysis reads."""

    args: argparse.Namespace
    tmp: Path
    schedule: list[sf.Fault]
    supervisor: kills.Supervisor
    receiver: FaultyReceiver
    clock: ClockFile
    disk: DiskLane


def analyse(run: SoakRun, drained: bool) -> dict[str, Any]:
    """Match the receipts with the ground truth; count the faults."""
    cycles = run.supervisor.cycles()
    failing = run.receiver.failing_spans()
    accounting = _account(run, cycles, failing)
    stats = json.loads((run.tmp / "stats.json").read_text())
    per_kill = redeliveries(run.receiver.events, run.supervisor.kills)
    summary = _summary(run, accounting, cycles, drained, per_kill, stats)
    ok = not (summary["missed"] or summary["false"] or summary["duplicates_real"])
    ok = ok and not summary["disk_full_crashes"]
    meta = _meta(run)
    details = _details(run, accounting, per_kill, stats, failing)
    faults = _faults(run, stats)
    faults[sf.DISK_FULL]["injected"] = len(run.disk.episodes)
    return {"ok": ok, "meta": meta, "summary": summary, "faults": faults, "details": details}


def _account(
    run: SoakRun, cycles: list[dict[str, Any]], failing: list[tuple[float, float]]
) -> Accounting:
    """The receiver's log matched with the ground truth over the good cycles."""
    truth = sup.Truth.load(run.tmp / "truth.jsonl")
    good = [(row["start"], row["end"]) for row in cycles if row["ok"]]
    go = truth.control_time("go") or 0.0
    jumps = run.clock.spans()
    return account(truth, good, run.receiver.events, go, failing=failing, jumps=jumps)


def _summary(
    run: SoakRun,
    accounting: Accounting,
    cycles: list[dict[str, Any]],
    drained: bool,
    per_kill: list[dict[str, Any]],
    stats: dict[str, Any],
) -> dict[str, Any]:
    """The accounting's counts, then the daemons', the new faults' and the disk lane's."""
    supervisor = run.supervisor
    summary = accounting.summary()
    summary.update(
        restarts=supervisor.restarts,
        unexpected_exits=supervisor.unexpected_exits,
        sigterm_escalated_to_sigkill=supervisor.escalated,
        cycles=len(cycles),
        cycles_failed=sum(not row["ok"] for row in cycles),
        drained=drained,
        daemon_warnings=sum(len(daemon.warnings) for daemon in supervisor.daemons),
        daemon_exit_codes=dict(Counter(str(d.proc.returncode) for d in supervisor.daemons)),
        **_new_fault_figures(run, per_kill, stats),
        **run.disk.summary(run.receiver.events),
    )
    return summary


def _meta(run: SoakRun) -> dict[str, Any]:
    """The run's settings, and which fault kinds it could not inject."""
    args, clock, disk = run.args, run.clock, run.disk
    not_injected = [*sf.NOT_INJECTED, *([] if clock.lib else [sf.CLOCK_JUMP])]
    not_injected += [] if disk.space.available else [sf.DISK_FULL]
    return {
        "minutes": args.minutes, "seed": args.seed, "interval": args.interval,
        "page_size": PAGE_SIZE, "request_timeout_s": REQUEST_TIMEOUT_S,
        "delivery_timeout_s": DELIVERY_TIMEOUT_S, "scenario": asdict(sup.SCENARIOS["soak"]),
        "not_injected": not_injected, "libfaketime": clock.lib, "argv": sys.argv[1:],
        "disk_skipped": disk.space.reason,
    }  # fmt: skip


def _details(
    run: SoakRun,
    accounting: Accounting,
    per_kill: list[dict[str, Any]],
    stats: dict[str, Any],
    failing: list[tuple[float, float]],
) -> dict[str, Any]:
    """The first of each kind of problem, the kills, the episodes and the schedule."""
    daemons = run.supervisor.daemons
    warnings = Counter(NOISE.sub("…", w) for daemon in daemons for w in daemon.warnings)
    return {
        "missed": accounting.missed[:30],
        "false": accounting.false[:30],
        "real_duplicates": accounting.real_duplicates[:30],
        "warnings": dict(warnings.most_common(30)),
        "crashes": run.supervisor.crashes[:10],
        "order_breaks": [w for daemon in daemons for w in daemon.warnings if "order" in w][:10],
        "kills": per_kill,
        "clock_jumps": run.clock.report(run.supervisor.longest_gap, after=3 * run.args.interval),
        "disk_full": run.disk.report(),
        "receiver_failing_s": round(sum(b - a for a, b in failing), 2),
        "dli_rules_expired": stats.get("faults_expired", {}),
        "schedule": [asdict(fault) for fault in run.schedule],
    }


def _faults(run: SoakRun, stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per kind: how many were scheduled and how many really injected."""
    supervisor, receiver, clock = run.supervisor, run.receiver, run.clock
    injected = Counter(stats.get("faults_fired", {}))
    injected.update(supervisor.signals)
    injected.update(receiver.episodes)
    injected[sf.CLOCK_JUMP] = len(clock.episodes)
    scheduled = Counter(fault.kind for fault in run.schedule)
    faults = {
        kind: {"scheduled": scheduled[kind], "injected": injected[kind], "unit": sf.UNITS[kind]}
        for kind in sf.ALL_KINDS
    }
    for kind, count in receiver.affected.items():
        faults[kind]["requests_affected"] = count
    return faults


def _new_fault_figures(
    run: SoakRun, per_kill: list[dict[str, Any]], stats: dict[str, Any]
) -> dict[str, Any]:
    """Raw duplicates per SIGKILL, token fetches and refreshes, clock jumps."""
    supervisor, receiver, clock = run.supervisor, run.receiver, run.clock
    sigkills = [row["redelivered"] for row in per_kill if row["kind"] != "sigterm"]
    events = Counter[str]()
    for daemon in supervisor.daemons:
        events.update(daemon.events)
    return {
        "sigkills": len(sigkills),
        "duplicates_raw_max_per_sigkill": max(sigkills, default=0),
        "largest_post_events": largest_post(receiver.events),
        "iam_tokens_issued": stats.get("iam_token_answers", {}).get("201", 0),
        "daemon_token_fetches": events["IAM token obtained"],
        "daemon_reauth_retries": sum(n for e, n in events.items() if "fresh credentials" in e),
        "clock_jumps": len(clock.episodes),
    }
