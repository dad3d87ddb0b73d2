"""The scale benchmark's analysis: per-cycle rows and each run's summary.

It reads what a run left behind (the daemon's "cycle completed" lines, the simulator's request
log, stats and ground truth, the receiver's events); starting the processes is `scale`'s, the
ground-truth arithmetic `scale_support`'s and the printed tables `scale_report`'s.

Cycle k is the daemon's k-th "cycle completed" log line: it ends at the line's ``timestamp``
and starts (its poll time T_k) ``duration_s`` earlier. Requests per cycle: the line's
``requests`` field, else the simulator's requests that started after the previous cycle's end
and by this one's. CPU per cycle: the line's ``cpu_s``, else the growth of the daemon's
/proc/<pid>/stat utime+stime between two such lines. Peak RSS: VmHWM before SIGTERM.

Lower bound of requests for cycle k, from the ground truth (the world at T_k and T_{k-1}):

    LB = pages(N_new) + sum over s in {starting, running, recovering} of pages(A_s)
         + min(E, pages(D) + pages(S))

pages(n) = floor(n / page_size) + 1 (a listing needs a short page to know it ended); N_new =
jobs created in (T_{k-1}, T_k]; A_s = jobs in state s at T_k, project-wide; E = jobs active at
T_{k-1} and not at T_k (each needs a state call, unless the ended listings are cheaper); D, S =
the dead and success jobs at T_k created at or after the oldest of those E jobs. LB is capped
at pages(all jobs): one complete listing tells everything. A new-jobs walk that overlaps what
it saw before also sees recently ended jobs, so a daemon can stay below LB. A cycle is "burst"
when the burst fell in (T_{k-1}, T_k], "quiet" when nothing changed then, else "changing".

Events (de-duplicated by ``event_id``) are matched with the ground truth on (job id,
to_state). A state a job entered after the baseline is expected when a whole cycle ran while
the job was in it (so a job first seen already terminal expects one event, to that state);
briefer states may be reported or not. Anything else, or a second event for a pair, is extra;
baseline states expect nothing. Latency: from the simulator's change to the receipt.
"""

from __future__ import annotations

import bisect
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import scale_procs as procs
from benchmarks import scale_support as sup
from benchmarks.scale_report import KINDS


def cycle_rows(
    truth: sup.Truth, tmp: Path, daemon: procs.Daemon, cpu_at_start: float, page_size: int
) -> list[dict[str, Any]]:
    """One row per cycle: its times, kind, requests beside the lower bound, CPU, sim time."""
    lines = daemon.cycles
    ends = [datetime.fromisoformat(line["timestamp"]).timestamp() for line in lines]
    starts = [
        end - float(line.get("duration_s", 0.0)) for end, line in zip(ends, lines, strict=True)
    ]
    calls = sorted(json.loads(row) for row in (tmp / "requests.jsonl").read_text().splitlines())
    times = [call[0] for call in calls]
    bounds = [None, *sup.lower_bounds(truth, starts, page_size)]
    kinds = ["baseline", *sup.cycle_kinds(truth, starts)]
    rows, cpu_before, first = [], cpu_at_start, 0
    for k, line in enumerate(lines):
        last = bisect.bisect_right(times, ends[k])
        proc_cpu = None if line["_cpu"] is None else line["_cpu"] - cpu_before
        cpu_before = cpu_before if line["_cpu"] is None else line["_cpu"]
        rows.append(
            {
                "cycle": k, "kind": kinds[k], "start": starts[k], "end": ends[k],
                "duration_s": line.get("duration_s"),
                "requests": line.get("requests", last - first),
                "requests_logged": line.get("requests"), "requests_sim": last - first,
                "lower_bound": bounds[k], "cpu_s": line.get("cpu_s", proc_cpu),
                "cpu_s_logged": line.get("cpu_s"), "cpu_s_proc": proc_cpu,
                "sim_handler_s": sum(call[1] for call in calls[first:last]),
                "events": line.get("events"), "costs": line.get("costs"),
            }
        )  # fmt: skip
        first = last
    return rows


def analyse(
    tmp: Path,
    daemon: procs.Daemon,
    receiver: sup.Receiver,
    hwm: float | None,
    cpu0: float,
    page_size: int,
) -> dict[str, Any]:
    """The per-cycle rows and the run's summary."""
    truth = sup.Truth.load(tmp / "truth.jsonl")
    rows = cycle_rows(truth, tmp, daemon, cpu0, page_size)
    measured = rows[1:]
    cycles = [(row["start"], row["end"]) for row in measured]
    go = truth.control_time("go") or rows[0]["end"]
    delivery = sup.compare_events(truth, cycles, receiver.events, go)
    stats = json.loads((tmp / "stats.json").read_text())
    stop = truth.control_time("stop") or rows[-1]["end"]
    window = max(1e-9, measured[-1]["end"] - measured[0]["start"])
    summary: dict[str, Any] = {
        "baseline_requests": rows[0]["requests"],
        "baseline_s": rows[0]["duration_s"],
        "requests_median": sup.median(row["requests"] for row in measured),
        "cpu_s_median": sup.median(row["cpu_s"] for row in measured if row["cpu_s"] is not None),
        "cycle_s_median": sup.median(row["duration_s"] or 0.0 for row in measured),
        "rss_mb": hwm,
        "expected": delivery.expected,
        "matched": delivery.matched,
        "missed": len(delivery.missed),
        "extra": len(delivery.extra),
        "latency_p50_s": sup.percentile(delivery.latencies, 0.5),
        "latency_p99_s": sup.percentile(delivery.latencies, 0.99),
        "sim_busy_share": sum(row["sim_handler_s"] for row in measured) / window,
        "sim_cpu_share": (stats["cpu_s_since_go"] or 0.0) / max(1e-9, stop - go),
        "burst_size": next((c.get("n") for c in truth.controls if c["control"] == "burst"), 0),
        "daemon_warnings": len(daemon.warnings),
        "requests_from": "log" if rows[-1]["requests_logged"] is not None else "simulator",
        "cpu_from": "log" if rows[-1]["cpu_s_logged"] is not None else "/proc",
    }
    for kind in KINDS:
        group = [row for row in measured if row["kind"] == kind]
        summary[kind] = {"cycles": len(group)}
        for key in ("requests", "lower_bound"):
            values = [row[key] for row in group]
            summary[kind][key] = [sup.median(values), max(values, default=None)]
    details = {"missed": delivery.missed[:20], "extra": delivery.extra[:20]}
    details["warnings"] = daemon.warnings[:20]
    return {"summary": summary, "cycles": rows, "details": details}
