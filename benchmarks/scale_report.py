"""The scale benchmark's output: the printed tables and the incremental/full ratios."""

from __future__ import annotations

from typing import Any

KINDS = ("quiet", "changing", "burst")
"""The kinds of measured cycles, in table order."""


def pair(values: list[Any]) -> str:
    """`median/max`, or `-` when there were no such cycles."""
    if values[0] is None:
        return "-"
    return f"{values[0]:g}/{values[1]:g}"


def num(value: float | None, spec: str) -> str:
    """A figure, or `-`."""
    return "-" if value is None else format(value, spec)


def print_report(results: list[dict[str, Any]], ratios: dict[str, Any], notes: list[str]) -> None:
    """Three tables: requests against the lower bound, cost and correctness, mode ratios."""
    print(
        "\nrequests per cycle, median/max, beside the lower bound LB (cycles: quiet/changing/burst)"
    )
    head = f"{'scen':4} {'mode':11} {'intv':>5} {'cycles':>8} {'quiet':>9} {'LB':>7}"
    print(f"{head} {'changing':>9} {'LB':>7} {'burst':>9} {'LB':>7} {'baseline':>8}")
    for r in results:
        s = r.get("summary")
        if s is None:
            print(f"{r['scenario']:4} {r['mode']:11} FAILED: {r.get('error')}")
            continue
        counts = "/".join(str(s[kind]["cycles"]) for kind in KINDS)
        line = f"{r['scenario']:4} {r['mode']:11} {r['interval']:>4g}s {counts:>8}"
        for kind in KINDS:
            line += f" {pair(s[kind]['requests']):>9} {pair(s[kind]['lower_bound']):>7}"
        print(f"{line} {s['baseline_requests']:>8}")
    print("\ncost and correctness (cpu_s, cycle_s: median per measured cycle; latency in s)")
    head = f"{'scen':4} {'mode':11} {'cpu_s':>6} {'cycle_s':>7} {'rss_MB':>6} {'expect':>6}"
    tail = f"{'lat_p50':>7} {'lat_p99':>7} {'sim_busy':>8} {'sim_cpu':>7}"
    print(f"{head} {'missed':>6} {'extra':>5} {tail}")
    for r in results:
        if (s := r.get("summary")) is None:
            continue
        print(
            f"{r['scenario']:4} {r['mode']:11} {num(s['cpu_s_median'], '.3f'):>6}"
            f" {num(s['cycle_s_median'], '.3f'):>7} {num(s['rss_mb'], '.0f'):>6} {s['expected']:>6}"
            f" {s['missed']:>6} {s['extra']:>5} {num(s['latency_p50_s'], '.2f'):>7}"
            f" {num(s['latency_p99_s'], '.2f'):>7} {s['sim_busy_share']:>8.1%}"
            f" {s['sim_cpu_share']:>7.1%}"
        )
    if ratios:
        print("\nincremental / full (medians per measured cycle)")
        for name, ratio in ratios.items():
            requests, cpu = num(ratio["requests"], ".3f"), num(ratio["cpu_s"], ".3f")
            print(f"{name:4} requests {requests}  cpu {cpu}")
    for note in notes:
        print(f"note: {note}")
    for r in results:
        for note in r["notes"]:
            print(f"note: {r['scenario']}/{r['mode']}: {note}")


def mode_ratios(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per scenario with both modes measured: incremental/full of requests and CPU."""
    done = {(r["scenario"], r["mode"]): r["summary"] for r in results if "summary" in r}
    ratios: dict[str, Any] = {}
    for name in dict.fromkeys(r["scenario"] for r in results):
        inc, full = done.get((name, "incremental")), done.get((name, "full"))
        if inc and full:
            ratios[name] = {
                key: inc[f"{key}_median"] / full[f"{key}_median"] if full[f"{key}_median"] else None
                for key in ("requests", "cpu_s")
            }
    return ratios
