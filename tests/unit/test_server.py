"""The HTTP endpoints on a real socket, and the health rules behind /healthz and /readyz."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.health import Health
from monitor.metrics import Metrics
from monitor.models import Job, JobState
from monitor.server import StatusViews, bound_port, make_app, start_server

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
STALE_AFTER_S = 120.0


class StepClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def health(clock: StepClock) -> Health:
    return Health(stale_after_s=STALE_AFTER_S, clock=clock)


@pytest.fixture
def metrics() -> Metrics:
    metrics = Metrics(version="9.9.9")
    metrics.declare(queues=["etl"], sinks=["hook"])
    return metrics


@asynccontextmanager
async def serving(
    metrics: Metrics,
    health: Health,
    views: StatusViews | None = None,
) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """The app on 127.0.0.1 port 0, with a client session and the base URL."""
    runner = await start_server(make_app(metrics, health, views=views), "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            yield session, f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        await runner.cleanup()


# --- Health, directly ---------------------------------------------------------------------


def test_health_is_starting_then_unhealthy_if_no_cycle_ever_succeeds(
    health: Health, clock: StepClock
) -> None:
    assert health.healthy() == (True, "starting")
    health.record_cycle(ok=False, at=clock())
    clock.advance(STALE_AFTER_S - 1)
    assert health.healthy()[0] is True
    clock.advance(1)
    ok, reason = health.healthy()
    assert ok is False
    assert "no successful cycle" in reason


def test_health_turns_stale_when_the_last_success_is_too_old(
    health: Health, clock: StepClock
) -> None:
    health.record_cycle(ok=True, at=clock())
    clock.advance(STALE_AFTER_S - 1)
    health.record_cycle(ok=False, at=clock())
    assert health.healthy() == (True, "ok")
    clock.advance(1)
    assert health.healthy()[0] is False
    health.record_cycle(ok=True, at=clock())
    assert health.healthy() == (True, "ok")


def test_readiness_needs_a_successful_cycle_and_then_stays(
    health: Health, clock: StepClock
) -> None:
    health.record_cycle(ok=False, at=clock())
    assert health.ready is False
    health.record_cycle(ok=True, at=clock())
    clock.advance(10 * STALE_AFTER_S)
    health.record_cycle(ok=False, at=clock())
    assert health.ready is True


def test_the_health_snapshot_reports_times_and_failure_streak(
    health: Health, clock: StepClock
) -> None:
    health.record_cycle(ok=True, at=clock())
    clock.advance(30)
    health.record_cycle(ok=False, at=clock())
    health.record_cycle(ok=False, at=clock())
    snap = health.snapshot()
    assert snap["last_success_at"] == T0.isoformat()
    assert snap["last_success_age_s"] == 30
    assert snap["last_cycle_ok"] is False
    assert snap["consecutive_failed_cycles"] == 2
    assert snap["healthy"] is True
    assert snap["ready"] is True


def test_a_non_positive_stale_limit_is_rejected() -> None:
    with pytest.raises(ValueError, match="stale_after_s"):
        Health(stale_after_s=0)


# --- the endpoints on a real socket -----------------------------------------------------------


async def fetch(
    session: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[aiohttp.ClientResponse, bytes]:
    """GET `url`; the (released) response for status and headers, and the raw body."""
    async with session.get(url, **kwargs) as response:
        return response, await response.read()


async def test_metrics_are_served_as_prometheus_text_with_known_series(
    metrics: Metrics, health: Health
) -> None:
    metrics.set_snapshot("etl", [Job(id="j1", state=JobState.RUNNING, queue="etl")])
    async with serving(metrics, health) as (session, base):
        response, body = await fetch(session, f"{base}/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = body.decode()
    assert 'dli_monitor_build_info{version="9.9.9"} 1.0' in text
    labels = 'project="default",queue="etl",region="local"'
    assert f'dli_batch_jobs{{{labels},state="running"}} 1.0' in text
    assert f'dli_batch_jobs{{{labels},state="dead"}} 0.0' in text


async def test_metrics_honour_an_openmetrics_accept_header(
    metrics: Metrics, health: Health
) -> None:
    accept = "application/openmetrics-text; version=1.0.0"
    async with serving(metrics, health) as (session, base):
        response, body = await fetch(session, f"{base}/metrics", headers={"Accept": accept})
    assert response.content_type == "application/openmetrics-text"
    assert body.decode().rstrip().endswith("# EOF")


async def test_metrics_are_gzipped_when_the_scraper_asks(metrics: Metrics, health: Health) -> None:
    async with serving(metrics, health) as (session, base):
        response, body = await fetch(
            session, f"{base}/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
        )
    assert response.headers.get("Content-Encoding") == "gzip"
    assert b"dli_monitor_build_info" in gzip.decompress(body)


async def test_healthz_is_ok_then_503_once_the_clock_passes_the_stale_limit(
    metrics: Metrics, health: Health, clock: StepClock
) -> None:
    health.record_cycle(ok=True, at=clock())
    async with serving(metrics, health) as (session, base):
        fresh, fresh_body = await fetch(session, f"{base}/healthz")
        clock.advance(STALE_AFTER_S + 1)
        stale, stale_body = await fetch(session, f"{base}/healthz")
    assert fresh.status == 200
    assert json.loads(fresh_body)["status"] == "ok"
    assert stale.status == 503
    body = json.loads(stale_body)
    assert body["status"] == "stale"
    assert body["last_success_at"] == T0.isoformat()


async def test_healthz_is_ok_while_starting_and_503_when_startup_takes_too_long(
    metrics: Metrics, health: Health, clock: StepClock
) -> None:
    async with serving(metrics, health) as (session, base):
        starting, body = await fetch(session, f"{base}/healthz")
        clock.advance(STALE_AFTER_S)
        late, _ = await fetch(session, f"{base}/healthz")
    assert starting.status == 200
    assert json.loads(body)["reason"] == "starting"
    assert late.status == 503


async def test_readyz_is_503_until_the_first_successful_cycle_then_200(
    metrics: Metrics, health: Health, clock: StepClock
) -> None:
    async with serving(metrics, health) as (session, base):
        fresh, fresh_body = await fetch(session, f"{base}/readyz")
        health.record_cycle(ok=False, at=clock())
        failed, _ = await fetch(session, f"{base}/readyz")
        health.record_cycle(ok=True, at=clock())
        ready, ready_body = await fetch(session, f"{base}/readyz")
    assert (fresh.status, json.loads(fresh_body)["status"]) == (503, "not_ready")
    assert failed.status == 503
    assert (ready.status, json.loads(ready_body)["status"]) == (200, "ready")


async def test_the_status_view_serves_what_views_returns(metrics: Metrics, health: Health) -> None:
    calls: list[int] = []

    async def views() -> Mapping[str, object]:
        calls.append(1)
        return {"targets": {"etl": 3}, "outbox_pending": {"hook": 1}, "at": T0}

    async with serving(metrics, health, views) as (session, base):
        response, body = await fetch(session, f"{base}/api/status")
    assert response.status == 200
    assert json.loads(body) == {"targets": {"etl": 3}, "outbox_pending": {"hook": 1}, "at": str(T0)}
    assert calls == [1]


async def test_the_status_view_is_an_empty_object_without_views(
    metrics: Metrics, health: Health
) -> None:
    async with serving(metrics, health) as (session, base):
        response, body = await fetch(session, f"{base}/api/status")
    assert response.status == 200
    assert json.loads(body) == {}


async def test_unknown_paths_are_404(metrics: Metrics, health: Health) -> None:
    async with serving(metrics, health) as (session, base):
        response, _ = await fetch(session, f"{base}/admin")
    assert response.status == 404


async def test_a_busy_port_raises_and_leaves_no_runner_behind(
    metrics: Metrics, health: Health
) -> None:
    first = await start_server(make_app(metrics, health), "127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            await start_server(make_app(metrics, health), "127.0.0.1", bound_port(first))
    finally:
        await first.cleanup()


async def test_bound_port_fails_clearly_for_a_runner_that_is_not_listening() -> None:
    runner = web.AppRunner(web.Application(), handle_signals=False)
    await runner.setup()
    try:
        with pytest.raises(RuntimeError, match="not listening"):
            bound_port(runner)
    finally:
        await runner.cleanup()
