"""Simulator listing benchmark: what one `World.page` call costs at 1,000 to 100,000 jobs.

Builds worlds of N jobs spread over 50 queues, about 500 of them active (running or starting)
and the rest `success`/`dead` history, and prints the median microseconds per `World.page` call
(page size 100) for the listings a monitor makes. For contrast it also times the naive
filter-and-sort the world did before it had indexes. It prints figures and never asserts on
them. Usage::

    python -m benchmarks.sim_pages
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from monitor.simulator import SimJob, World

SIZES = (1_000, 10_000, 100_000)
QUEUES = tuple(f"q{i:02d}" for i in range(50))
ACTIVE = 500
PAGE = 100
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def build(count: int, seed: int = 7) -> World:
    """A world of `count` jobs over `QUEUES`, about `ACTIVE` active, created 1 s apart."""
    rng = random.Random(seed)
    world = World(clock=lambda: T0)
    active = set(rng.sample(range(count), min(ACTIVE, count)))
    for i in range(count):
        if i in active:
            state = "running" if rng.random() < 0.8 else "starting"
        else:
            state = "success" if rng.random() < 0.9 else "dead"
        created = T0 - timedelta(seconds=count - i)
        world.add_job(queue=rng.choice(QUEUES), name=f"job{i}", state=state, created=created)
    return world


def naive_page(world: World, queue: str | None, state: str | None) -> list[SimJob]:
    """Page 0 the way the world served it before: scan every job, filter, sort."""
    matches = [
        job
        for job in reversed(world.jobs.values())
        if not world.is_hidden(job.id)
        and (queue is None or job.queue == queue)
        and (state is None or job.state.strip().lower() == state)
    ]
    matches.sort(key=lambda job: job.create_ms, reverse=True)
    return matches[:PAGE]


def median_us(call: Callable[[], object], repeat: int) -> float:
    """The median wall time of `call` in microseconds over `repeat` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000


def measure(world: World, count: int) -> dict[str, float]:
    """Median microseconds per call of each listing on one world of `count` jobs."""
    queue = QUEUES[7]
    cases: dict[str, Callable[[], object]] = {
        "unfiltered page 0": lambda: world.page(offset=0, size=PAGE),
        "unfiltered deep page": lambda: world.page(offset=count // 2, size=PAGE),
        "state=running": lambda: world.page(offset=0, size=PAGE, state="running"),
        "queue+state=running": lambda: world.page(
            offset=0, size=PAGE, queue_name=queue, state="running"
        ),
        "queue only": lambda: world.page(offset=0, size=PAGE, queue_name=queue),
    }
    figures = {label: median_us(call, 501) for label, call in cases.items()}
    naive = median_us(lambda: naive_page(world, queue, "running"), max(5, 200_000 // count))
    figures["naive queue+state (before)"] = naive
    return figures


def main() -> None:
    """Build each world and print one line of medians per listing."""
    print(f"median us per World.page call (size {PAGE}); 50 queues, ~{ACTIVE} active jobs")
    print(f"{'listing':<28}" + "".join(f"{f'N={n:,}':>14}" for n in SIZES))
    rows: dict[str, list[float]] = {}
    for count in SIZES:
        started = time.perf_counter()
        world = build(count)
        built = time.perf_counter() - started
        for label, figure in measure(world, count).items():
            rows.setdefault(label, []).append(figure)
        rows.setdefault("build world (s)", []).append(built)
    for label, figures in rows.items():
        print(f"{label:<28}" + "".join(f"{figure:>14.1f}" for figure in figures))


if __name__ == "__main__":
    main()
