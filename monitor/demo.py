"""`dli-monitor demo` and `dli-monitor simulate`: the simulator, alone or with the monitor.

The demo needs no account and no config: it starts the built-in DLI simulator on a free
loopback port with a lively scenario and AK/SK checking on, points a monitor at it (console
sink, metrics on 127.0.0.1:9108, a temporary state file) and runs until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tempfile
from pathlib import Path
from typing import Literal

import structlog

from monitor import app
from monitor.config import parse_settings
from monitor.server import bound_port
from monitor.simulator import ScenarioDriver, World, default_scenario, load_scenario, serve

log = structlog.get_logger(__name__)

DEMO_PROJECT = "demo0000000000000000000000000000"
DEMO_AK = "DEMOACCESSKEY0000000"
DEMO_SK = "demo-secret-key-not-a-real-one-0000000000"  # the simulator's own fake key


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


async def _wait_for_stop() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    return stop


async def run_simulator(
    *,
    listen: str,
    scenario: str | None,
    project_id: str,
    auth: Literal["none", "aksk"],
    access_key: str | None,
    secret_key: str | None,
) -> int:
    """Serve the simulator until SIGINT/SIGTERM."""
    host, port = _split_listen(listen)
    world = World()
    plan = load_scenario(Path(scenario)) if scenario else default_scenario()
    credentials = {access_key: secret_key} if access_key and secret_key else None
    runner = await serve(
        world, host, port, project_id=project_id, auth=auth, credentials=credentials
    )
    stop = await _wait_for_stop()
    driver = ScenarioDriver(world, plan)
    task = asyncio.create_task(driver.run(stop))
    sys.stderr.write(
        f"DLI simulator on http://{host}:{port}/v2.0/{project_id}/batches (auth: {auth})\n"
    )
    try:
        await stop.wait()
    finally:
        await task
        await runner.cleanup()
    return 0


async def run_demo(*, listen: str, interval: str, state: str | None) -> int:
    """The simulator plus a monitor printing to the console, until Ctrl-C."""
    world = World()
    runner = await serve(
        world,
        "127.0.0.1",
        0,
        project_id=DEMO_PROJECT,
        auth="aksk",
        credentials={DEMO_AK: DEMO_SK},
    )
    sim_port = bound_port(runner)
    stop = await _wait_for_stop()
    driver = ScenarioDriver(world, default_scenario())
    driver_task = asyncio.create_task(driver.run(stop))
    with tempfile.TemporaryDirectory(prefix="dli-monitor-demo-") as tmp:
        settings = parse_settings(
            {
                "dli": {
                    "endpoint": f"http://127.0.0.1:{sim_port}",
                    "project_id": DEMO_PROJECT,
                    "auth": {"type": "aksk", "access_key": DEMO_AK, "secret_key": DEMO_SK},
                    "request_timeout": "5s",
                    "max_requests_per_minute": 600,
                    "retry": {"attempts": 3, "backoff": ["200ms", "500ms"]},
                },
                "queues": "*",
                "poll": {"interval": interval},
                "state": {"path": state or str(Path(tmp) / "demo.db")},
                "server": {"listen": listen},
                "delivery": {"backoff": ["1s", "5s"]},
                "shutdown_timeout": "5s",
                "sinks": [{"name": "console", "type": "console"}],
            }
        )
        sys.stderr.write(
            f"demo: simulator on http://127.0.0.1:{sim_port}, metrics on http://{listen}/metrics; "
            "the first poll is a silent baseline, events follow. Ctrl-C to stop.\n"
        )
        try:
            return await app.run(settings, stop=stop)
        finally:
            stop.set()
            await driver_task
            await runner.cleanup()
