"""The capacity benchmark's analysis: ticks, drift, CPU shares and delivery per project.

A tick is the k-th "cycle completed" line of every project (tick 0 is the baseline). Its daemon
CPU is the /proc utime+stime the harness read when the tick's last line arrived, minus that of
the previous tick; the sum of the lines' own ``cpu_s`` is kept beside it as an upper bound (the
projects' cycles overlap on one event loop, and each line counts the whole process's CPU
during its cycle). Events are split per project by job id (every simulator has its own seed,
so its own ids) and matched with that project's ground truth by `scale_support.compare_events`.

Drift: in incremental mode the daemon keeps ended jobs in memory for
``max(metrics.job_series_ttl, 2 * interval)`` (an hour by default), so a run of a minute is not
its steady state; the first and last thirds of the ticks, the RSS at the first and last tick,
and the jobs that ended per tick show which way the figures move. The table and the
extrapolation are in `capacity_print`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import scale_procs as procs
from benchmarks import scale_support as sup
from monitor.config.metrics import MetricsSettings

TERMINAL = ("success", "dead")


@dataclass
class RunData:
    """What one run left behind, for the analysis."""

    names: list[str]
    cycles: int
    interval: float
    truths: list[sup.Truth]
    daemon: procs.Daemon
    receiver: sup.Receiver
    job_series_ttl: float | None = None
    """As given to the daemon (None: its default)."""


def proc_rss_mb(pid: int) -> float | None:
    """Resident set size now (VmRSS) of a live process in MiB (None if unavailable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def span(line: dict[str, Any]) -> tuple[float, float]:
    """(start, end) wall seconds of a cycle line: it ends at its timestamp."""
    end = datetime.fromisoformat(line["timestamp"]).timestamp()
    return end - float(line.get("duration_s") or 0.0), end


def per_project(run: RunData) -> list[list[dict[str, Any]]]:
    """Each project's cycle lines, in order."""
    return [[ln for ln in run.daemon.cycles if ln.get("project") == n] for n in run.names]


def tick_rows(run: RunData, lines: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per tick present in every project: CPU (/proc and logged), span, requests."""
    rows: list[dict[str, Any]] = []
    before = None
    for k in range(min(len(own) for own in lines)):
        tick = [own[k] for own in lines]
        cpus = [ln["_cpu"] for ln in tick if ln.get("_cpu") is not None]
        end_cpu = max(cpus) if cpus else None
        spans = [span(ln) for ln in tick]
        rows.append(
            {
                "tick": k,
                "cpu_s": None if before is None or end_cpu is None else end_cpu - before,
                "cpu_s_logged_sum": sum(float(ln.get("cpu_s") or 0.0) for ln in tick),
                "end": max(e for _, e in spans),
                "span_s": max(e for _, e in spans) - min(s for s, _ in spans),
                "rss_mb": max((ln.get("_rss") or 0.0 for ln in tick), default=None),
                "requests": [ln.get("requests") for ln in tick],
                "duration_s": [ln.get("duration_s") for ln in tick],
            }
        )
        before = end_cpu if end_cpu is not None else before
    return rows


def delivery(run: RunData, lines: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Expected, missed and extra events summed over the projects; pooled latencies."""
    totals: dict[str, Any] = {"expected": 0, "matched": 0, "missed": 0, "extra": 0}
    latencies: list[float] = []
    examples: dict[str, list[Any]] = {"missed": [], "extra": []}
    known: set[str] = set()
    for truth, own in zip(run.truths, lines, strict=True):
        ids = {record["id"] for record in truth.changes}
        known |= ids
        events = [event for event in run.receiver.events if event["job_id"] in ids]
        cycles = [span(ln) for ln in own[1:]]
        go = truth.control_time("go") or span(own[0])[1]
        result = sup.compare_events(truth, cycles, events, go)
        totals["expected"] += result.expected
        totals["matched"] += result.matched
        totals["missed"] += len(result.missed)
        totals["extra"] += len(result.extra)
        latencies += result.latencies
        examples["missed"] += result.missed[:5]
        examples["extra"] += result.extra[:5]
    stray = [event for event in run.receiver.events if event["job_id"] not in known]
    totals["extra"] += len(stray)
    totals["extra_unknown_job"] = len(stray)
    totals["latency_p50_s"] = sup.percentile(latencies, 0.5)
    totals["latency_p99_s"] = sup.percentile(latencies, 0.99)
    totals["examples"] = {key: value[:10] for key, value in examples.items()} | {"stray": stray[:5]}
    return totals


def shares(readings: Any) -> dict[str, float | None]:
    """Each process's CPU over the active ticks as a share of one core."""
    start, end = readings.window
    window = max(1e-9, end - start)
    grow = {name: readings.at_end[name] - readings.at_go[name] for name in readings.at_end}
    sims = sum(value for name, value in grow.items() if name.startswith("sim"))
    return {
        "daemon_share_window": grow.get("daemon", 0.0) / window,
        "sims_share": sims / window,
        "harness_share": grow.get("harness", 0.0) / window,
        "active_window_s": window,
    }


def drift(
    run: RunData, measured: list[dict[str, Any]], window: tuple[float, float]
) -> dict[str, Any]:
    """CPU early and late in the run, RSS at its ends, ended jobs held now and at steady state."""
    third = max(1, len(measured) // 3)
    cpus = [row["cpu_s"] for row in measured if row["cpu_s"] is not None]
    start, end = window
    ended = sum(
        1
        for truth in run.truths
        for record in truth.changes
        if record["to"] in TERMINAL and start <= record["t"] <= end
    )
    k, ticks = len(run.names), max(1, len(measured))
    per_tick = ended / ticks / k
    ttl = run.job_series_ttl
    keep_s = max(MetricsSettings().job_series_ttl if ttl is None else ttl, 2 * run.interval)
    return {
        "cpu_tick_s_first_third": sup.median(cpus[:third]),
        "cpu_tick_s_last_third": sup.median(cpus[-third:]),
        "rss_mb_first_tick": measured[0]["rss_mb"] if measured else None,
        "rss_mb_last_tick": measured[-1]["rss_mb"] if measured else None,
        "ended_per_tick_per_project": per_tick,
        "ended_held_per_project_at_end": ended / k,
        "keep_ended_s": keep_s,
        "ended_held_per_project_steady": per_tick * keep_s / run.interval,
    }


def analyse(run: RunData, readings: Any) -> dict[str, Any]:
    """The run's ticks and summary."""
    lines = per_project(run)
    ticks = tick_rows(run, lines)
    measured = ticks[1 : 1 + run.cycles]
    k = len(run.names)
    cpu = sup.median(row["cpu_s"] for row in measured if row["cpu_s"] is not None)
    requests = [r for row in measured for r in row["requests"] if r is not None]
    summary: dict[str, Any] = {
        "baseline_requests": sum(r or 0 for r in ticks[0]["requests"]) if ticks else None,
        "baseline_s": max((d or 0.0 for d in ticks[0]["duration_s"]), default=None),
        "requests_per_cycle_per_project": sup.median(requests),
        "requests_per_cycle_per_project_max": max(requests, default=None),
        "cpu_tick_s_median": cpu,
        "cpu_tick_s_per_project": None if cpu is None else cpu / k,
        "cpu_core_share": None if cpu is None else cpu / run.interval,
        "cpu_tick_s_logged_sum_median": sup.median(r["cpu_s_logged_sum"] for r in measured),
        "cycle_s_median": sup.median(
            d for row in measured for d in row["duration_s"] if d is not None
        ),
        "tick_span_s_median": sup.median(row["span_s"] for row in measured),
        "rss_peak_mb": readings.hwm_mb,
        "rss_end_mb": readings.rss_mb,
        "daemon_warnings": len(run.daemon.warnings),
        "measured_ticks": len(measured),
    }
    summary.update(shares(readings))
    summary.update(drift(run, measured, readings.window))
    events = delivery(run, lines)
    details = {"examples": events.pop("examples"), "warnings": run.daemon.warnings[:20]}
    summary.update(events)
    return {"summary": summary, "ticks": ticks, "details": details}
