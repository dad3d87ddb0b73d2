"""The capacity benchmark's output: the table per K, the drift table, and the extrapolation.

The extrapolation fits a least-squares line through (K, daemon CPU per tick) over the K values
that ran, ``cpu(K) = fixed + per_project * K``, and solves ``cpu(X) = 0.5 * interval``:
``X = (0.5 * interval - fixed) / per_project``; with one K, fixed = 0 and per_project =
cpu(K) / K. The same kind of line through (K, peak RSS) gives the RSS expected at X (with at
least two K values; it is the RSS of a run of a minute, see the drift in `capacity_report`).
"""

from __future__ import annotations

from typing import Any

HALF_CORE = 0.5
FORMULA = (
    "X = (0.5 * interval - fixed) / per_project, where cpu_per_tick(K) = fixed + per_project * K"
    " is the least-squares line through the measured K"
)


def line_fit(points: list[tuple[float, float]], *, origin: bool) -> tuple[float, float] | None:
    """Least-squares (intercept, slope) through the points; for one K value, through the
    origin when `origin`, else None."""
    if not points:
        return None
    if len({x for x, _ in points}) == 1:
        x, y = points[0]
        return (0.0, y / x) if origin else None
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - slope * mx, slope


def extrapolate(results: list[dict[str, Any]], interval: float) -> dict[str, Any]:
    """Projects one daemon holds before it uses half a core (see the module docstring)."""
    done = [(r["projects"], r["summary"]) for r in results if "summary" in r]
    cpu_points = [(k, s["cpu_tick_s_median"]) for k, s in done if s["cpu_tick_s_median"]]
    cpu = line_fit(cpu_points, origin=True)
    rss = line_fit([(k, s["rss_peak_mb"]) for k, s in done if s["rss_peak_mb"]], origin=False)
    fit: dict[str, Any] = {
        "formula": FORMULA,
        "interval_s": interval,
        "cpu_fixed_s": None if cpu is None else cpu[0],
        "cpu_per_project_s": None if cpu is None else cpu[1],
        "rss_fixed_mb": None if rss is None else rss[0],
        "rss_per_project_mb": None if rss is None else rss[1],
        "projects_at_half_core": None,
        "rss_at_that_mb": None,
    }
    if cpu is not None and cpu[1] > 0:
        projects = (HALF_CORE * interval - cpu[0]) / cpu[1]
        fit["projects_at_half_core"] = projects
        if rss is not None:
            fit["rss_at_that_mb"] = rss[0] + rss[1] * projects
    return fit


def num(value: float | None, spec: str, scale: float = 1.0) -> str:
    """A figure (times `scale`), or `-`."""
    return "-" if value is None else format(value * scale, spec)


def row(k: int, s: dict[str, Any], marginal: float | None) -> str:
    """One line of the main table."""
    latency = f"{num(s['latency_p50_s'], '.1f')}/{num(s['latency_p99_s'], '.1f')}"
    return (
        f"{k:>2} {num(s['requests_per_cycle_per_project'], 'g'):>12}"
        f" {num(s['cpu_tick_s_median'], '.0f', 1000):>7}ms"
        f" {num(s['cpu_tick_s_per_project'], '.0f', 1000):>7}ms"
        f" {num(s['cpu_core_share'], '.1%'):>6} {num(s['sims_share'], '.1%'):>6}"
        f" {num(s['rss_peak_mb'], '.0f'):>7} {num(marginal, '.1f'):>9}"
        f" {num(s['cycle_s_median'], '.2f'):>7} {s['expected']:>6}"
        f" {str(s['missed']) + '/' + str(s['extra']):>10} {latency:>11}"
    )


def print_table(results: list[dict[str, Any]], interval: float) -> None:
    """The figures per K, with the marginal RSS per project against the smallest K."""
    print(f"\nscenario M per project, interval {interval:g}s, incremental; medians per tick")
    print(
        f"{'K':>2} {'req/cyc/proj':>12} {'cpu/tick':>9} {'cpu/proj':>9} {'core':>6}"
        f" {'sims':>6} {'rss_MB':>7} {'rss+/proj':>9} {'cycle_s':>7} {'expect':>6}"
        f" {'miss/extra':>10} {'lat p50/p99':>11}"
    )
    first = next((r for r in results if "summary" in r), None)
    for r in results:
        if (s := r.get("summary")) is None:
            print(f"{r['projects']:>2} FAILED: {r.get('error')}")
            continue
        k, marginal = r["projects"], None
        if first is not None and k > first["projects"] and s["rss_peak_mb"] is not None:
            base = first["summary"]["rss_peak_mb"]
            marginal = None if base is None else (s["rss_peak_mb"] - base) / (k - first["projects"])
        print(row(k, s, marginal))
    print(
        "cpu/tick: daemon utime+stime from /proc per tick (all projects); core: cpu/tick /"
        " interval; sims: the K simulators' CPU over the active ticks, in cores; rss: VmHWM;"
        " rss+/proj: (RSS_K - RSS_1) / (K - 1)"
    )


def print_drift(results: list[dict[str, Any]]) -> None:
    """How CPU and RSS moved during the run, and how many ended jobs memory will hold."""
    print("\ndrift: cpu/tick first/last third of the ticks, RSS at first/last tick, ended jobs")
    print(f"{'K':>2} {'cpu first/last':>15} {'rss first/last':>15} {'ended/tick/proj':>15}", end="")
    print(f" {'held/proj now':>13} {'held/proj steady':>16}")
    for r in results:
        if (s := r.get("summary")) is None:
            continue
        cpu = "/".join(
            num(s[key], ".0f", 1000) for key in ("cpu_tick_s_first_third", "cpu_tick_s_last_third")
        )
        rss = "/".join(num(s[key], ".1f") for key in ("rss_mb_first_tick", "rss_mb_last_tick"))
        print(
            f"{r['projects']:>2} {cpu + ' ms':>15} {rss + ' MB':>15}"
            f" {num(s['ended_per_tick_per_project'], '.1f'):>15}"
            f" {num(s['ended_held_per_project_at_end'], '.0f'):>13}"
            f" {num(s['ended_held_per_project_steady'], '.0f'):>16}"
        )
    print(
        "held: ended jobs the daemon keeps in memory per project, now and once the"
        " keep_ended window (metrics.job_series_ttl, default 1 h) is full"
    )


def print_report(results: list[dict[str, Any]], fit: dict[str, Any], interval: float) -> None:
    """The table per K, the drift table, then the extrapolation line and its formula."""
    print_table(results, interval)
    print_drift(results)
    projects = fit.get("projects_at_half_core")
    if projects is None:
        print("\nextrapolation: not enough data")
        return
    print(
        f"\none pod holds about {projects:.0f} projects of size M at interval {interval:g}s"
        f" before the daemon uses half a core (peak RSS then about"
        f" {num(fit['rss_at_that_mb'], '.0f')} MB, from the run's start-up figures)"
    )
    print(
        f"  {fit['formula']}; fixed = {fit['cpu_fixed_s'] * 1000:.1f} ms,"
        f" per_project = {fit['cpu_per_project_s'] * 1000:.1f} ms"
    )
