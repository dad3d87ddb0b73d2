"""Optional credentials on the HTTP server, on a real socket: /metrics and /api/status ask for
them, the probes never do, and nothing but GET is served."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from monitor.config import parse_settings
from monitor.config.errors import ConfigError
from monitor.health import Health
from monitor.metrics import Metrics
from monitor.server import Credentials, bound_port, make_app, start_server

TOKEN = "CANARY-SCRAPE-TOKEN-0001"
PASSWORD = "CANARY-SCRAPE-PASSWORD-0001"


@asynccontextmanager
async def serving(credentials: Credentials | None) -> AsyncIterator[str]:
    """The monitor's HTTP app on a free loopback port; yields its base URL."""
    metrics = Metrics(version="9.9.9")

    async def views() -> Mapping[str, object]:
        return {"ok": True}

    app = make_app(metrics, Health(stale_after_s=60), views=views, credentials=credentials)
    runner = await start_server(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        await runner.cleanup()


async def status_of(url: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers) as response,
    ):
        await response.read()
        return response.status, dict(response.headers)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("path", ["/metrics", "/api/status"])
async def test_a_bearer_token_guards_metrics_and_views(path: str) -> None:
    async with serving(Credentials(bearer_token=TOKEN)) as base:
        missing, headers = await status_of(base + path)
        wrong, _ = await status_of(base + path, Authorization="Bearer nope")
        right, _ = await status_of(base + path, Authorization=f"Bearer {TOKEN}")
    assert (missing, wrong, right) == (401, 401, 200)
    assert headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/metrics", "/api/status"])
async def test_basic_auth_guards_metrics_and_views(path: str) -> None:
    async with serving(Credentials(username="prom", password=PASSWORD)) as base:
        missing, headers = await status_of(base + path)
        wrong_user, _ = await status_of(base + path, Authorization=basic("eve", PASSWORD))
        wrong_password, _ = await status_of(base + path, Authorization=basic("prom", "x"))
        garbage, _ = await status_of(base + path, Authorization="Basic %%%")
        right, _ = await status_of(base + path, Authorization=basic("prom", PASSWORD))
    assert (missing, wrong_user, wrong_password, garbage, right) == (401, 401, 401, 401, 200)
    assert headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_the_probes_never_ask_for_credentials(path: str) -> None:
    async with serving(Credentials(bearer_token=TOKEN)) as base:
        code, _ = await status_of(base + path)
    assert code != 401  # 503 before the first cycle, but never a challenge


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/metrics", "/api/status", "/healthz"])
async def test_nothing_but_get_is_served(method: str, path: str) -> None:
    async with serving(None) as base:
        code, _ = await status_of(base + path, method)
    assert code == 405


async def test_without_credentials_everything_is_open() -> None:
    async with serving(None) as base:
        code, _ = await status_of(base + "/metrics")
    assert code == 200


def settings_with(auth: dict[str, Any]) -> Any:
    return parse_settings(
        {
            "dli": {
                "endpoint": "http://127.0.0.1:1",
                "project_id": "p1",
                "auth": {"type": "none"},
            },
            "queues": ["etl"],
            "server": {"listen": "127.0.0.1:0", "auth": auth},
        }
    )


def test_server_auth_takes_a_token_or_a_user_and_password_but_not_both() -> None:
    assert settings_with({"bearer_token": TOKEN}).server.auth.bearer_token is not None
    assert settings_with({"username": "u", "password": PASSWORD}).server.auth.username == "u"
    for wrong in (
        {"bearer_token": TOKEN, "username": "u", "password": PASSWORD},
        {"username": "u"},
        {},
    ):
        with pytest.raises(ConfigError) as info:
            settings_with(wrong)
        assert "server.auth" in str(info.value)
        assert TOKEN not in str(info.value) and PASSWORD not in str(info.value)
