"""Shared fixtures: a controllable clock, structlog reset, and the integration harness.

The harness wires the real parts on real sockets: the DLI simulator (AK/SK checking on), an
in-process webhook receiver, a temporary SQLite file, and a `Monitor` built from a config dict
exactly as `dli-monitor run` builds it. Tests drive cycles by hand with a fake clock.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestServer

from monitor.app import Monitor
from monitor.config import Settings, parse_settings
from monitor.models import CycleReport
from monitor.simulator import World, make_app
from tests.fakes.receiver import Receiver

pytest_plugins = ["tests.pg_fixtures"]
PROJECT = "0123456789abcdef0123456789abcdef"
AK = "AKTEST00000000000001"
SK = "CANARY-SK-integration-secret-0001"
SINGLE = {"project": "default", "region": "local"}
"""The project labels of the harness's single `dli:` mapping (its endpoint names no region)."""


class FakeClock:
    """A clock tests move by hand; starts at a fixed, realistic moment."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += timedelta(seconds=seconds)


def require_tool(name: str) -> str:
    """The path of a binary; skip without it, or fail when CI sets REQUIRE_TOOLS=1."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("REQUIRE_TOOLS") == "1":
            pytest.fail(f"{name} is required (REQUIRE_TOOLS=1) but not installed")
        pytest.skip(f"{name} not installed")
    return path


class WallClock(FakeClock):
    """The real clock, for tests whose monitor runs in another process (it reads real time)."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class Harness:
    """Simulator + receiver + state file + config; builds monitors that share the state file."""

    world: World
    sim: TestServer
    receiver: Receiver
    clock: FakeClock
    state_path: Path
    overrides: dict[str, Any] = field(default_factory=dict)

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The config dict the monitor runs with; keyword overrides replace top-level keys."""
        data: dict[str, Any] = {
            "dli": {
                "endpoint": str(self.sim.make_url("")).rstrip("/"),
                "project_id": PROJECT,
                "auth": {"type": "aksk", "access_key": AK, "secret_key": SK},
                "page_size": 10,
                "request_timeout": "2s",
                "max_requests_per_minute": 0,
                "retry": {"attempts": 2, "backoff": [0]},
            },
            "queues": ["etl"],
            "poll": {"interval": "30s", "listing_attempts": 3},
            "state": {"path": str(self.state_path)},
            "server": {"listen": "127.0.0.1:0", "enabled": False},
            "delivery": {"backoff": ["10s", "60s"], "max_age": "1h", "timeout": "2s"},
            "shutdown_timeout": "5s",
            "sinks": [{"name": "hook", "type": "webhook", "url": self.receiver.url}],
        }
        data.update(self.overrides)
        data.update(overrides)
        return data

    def settings(self, **overrides: Any) -> Settings:
        return parse_settings(self.config(**overrides))

    @asynccontextmanager
    async def monitor(self, **overrides: Any) -> AsyncIterator[Monitor]:
        """A monitor process over the shared state file (a new one = a restart)."""
        async with Monitor(self.settings(**overrides), clock=self.clock) as monitor:
            yield monitor

    async def cycle(self, **overrides: Any) -> CycleReport:
        """One cycle in a fresh monitor (as if the process restarted between cycles)."""
        async with self.monitor(**overrides) as monitor:
            return await monitor.run_cycle()


@asynccontextmanager
async def _harness(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Harness]:
    world = World(clock=clock)
    app = make_app(world, project_id=PROJECT, auth="aksk", credentials={AK: SK}, clock=clock)
    async with TestServer(app) as sim, Receiver() as receiver:
        yield Harness(world, sim, receiver, clock, tmp_path / "state.db")


@pytest.fixture
async def harness(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Harness]:
    """The harness on a fake clock: cycles are driven by hand."""
    async with _harness(tmp_path, clock) as h:
        yield h


@pytest.fixture
async def live_harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """The harness on the wall clock, for a monitor running as a separate process."""
    async with _harness(tmp_path, WallClock()) as h:
        yield h
