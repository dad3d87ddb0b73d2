"""A state file that cannot be written (the disk is full): the snapshot does not advance, the
monitor says so loudly (log, metric, /healthz), and when space returns it catches up by itself
with every change reported once.

The full disk is real to SQLite: `PRAGMA max_page_count` caps the file at its current size, so
the next commit that needs a page fails with SQLITE_FULL exactly as a full filesystem does.
"""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from monitor.app import Monitor
from monitor.store import SqliteStore
from tests.conftest import SINGLE, Harness


def cap_the_file(monitor: Monitor, pages: int | None = None) -> None:
    """Let the state file grow no further (or to `pages` pages)."""
    assert isinstance(monitor.store, SqliteStore)
    db = monitor.store.connection  # the test reaches into the store to fill its "disk"
    size = pages if pages is not None else int(db.execute("PRAGMA page_count").fetchone()[0])
    db.execute(f"PRAGMA max_page_count = {size}")


@pytest.mark.parametrize("mode", ["incremental", "full"])
async def test_a_full_disk_holds_the_snapshot_says_so_and_recovers(
    harness: Harness, mode: str
) -> None:
    harness.overrides["poll"] = {"interval": "30s", "mode": mode}
    first = harness.world.add_job(queue="etl", name="victim", state="running")
    async with harness.monitor() as monitor:
        await monitor.run_cycle()
        cap_the_file(monitor)
        harness.world.set_state(first.id, "dead")
        for index in range(300):  # enough new rows that the commit needs new pages
            harness.world.add_job(queue="etl", name=f"filler-{index:03d}-" + "x" * 200)
        harness.clock.advance(30)
        with capture_logs() as logs:
            report = await monitor.run_cycle()
            await monitor.run_cycle()
        registry = monitor.metrics.registry
        failures = registry.get_sample_value("dli_monitor_state_write_failures_total")
        reason = registry.get_sample_value(
            "dli_monitor_poll_errors_total", {**SINGLE, "queue": "etl", "reason": "state_write"}
        )
        healthy, why = monitor.health.healthy()
        assert not report.ok
        assert harness.receiver.payloads() == []  # nothing committed, nothing sent
        assert (failures, reason) == (2.0, 2.0)
        assert not healthy and "cannot write the state file" in why
        errors = [e for e in logs if e["log_level"] == "error"]
        assert [e["event"] for e in errors] == [
            "cannot write the state file; snapshot not advanced, changes wait until it can"
        ]  # once, not every cycle

        cap_the_file(monitor, 1_000_000)  # space returns
        harness.clock.advance(30)
        recovered = await monitor.run_cycle()
        assert recovered.ok and monitor.health.healthy()[0]
    deaths = [p for p in harness.receiver.payloads() if p["to_state"] == "dead"]
    assert [p["job"]["name"] for p in deaths] == ["victim"]
