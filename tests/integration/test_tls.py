"""TLS per endpoint, on real HTTPS sockets: a private CA is trusted for the endpoint that names
it, `verify: false` works only where it is said (and is warned about), and nothing else
changes: an endpoint without settings still refuses the self-signed certificate."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from monitor.config import parse_settings
from monitor.config.errors import ConfigError
from monitor.config.tls import TlsSettings
from monitor.dli.auth import NoAuth
from monitor.dli.client import DliClient
from monitor.dli.errors import DliTransportError
from monitor.simulator import World, make_app
from monitor.sinks import WebhookSink
from monitor.sinks.base import SinkError
from monitor.wiring import SessionPool
from tests.integration.test_failure_reasons import notification, self_signed  # noqa: F401

PROJECT = "p1"


@pytest.fixture
async def https_simulator(self_signed: tuple[Path, Path]) -> AsyncIterator[str]:  # noqa: F811
    """The DLI simulator (and a webhook path) over HTTPS with a self-signed certificate."""
    key, cert = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    world = World()
    world.add_job(queue="etl", name="x", state="running")
    app = make_app(world, project_id=PROJECT)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def list_through(session: aiohttp.ClientSession, endpoint: str) -> int:
    client = DliClient(session, endpoint=endpoint, project_id=PROJECT, auth=NoAuth())
    page = await client.list_batches(offset=0, size=10)
    return len(page.rows)


async def test_a_private_ca_is_trusted_for_the_endpoint_that_names_it(
    https_simulator: str,
    self_signed: tuple[Path, Path],  # noqa: F811
) -> None:
    _key, cert = self_signed
    async with SessionPool() as sessions:
        trusted = sessions.get(TlsSettings(ca_file=cert), setting="dli.tls")
        assert await list_through(trusted, https_simulator) == 1
        default = sessions.get(None, setting="sinks[0].tls")
        with pytest.raises(DliTransportError) as info:
            await list_through(default, https_simulator)
    assert info.value.error_code == "tls"


async def test_verify_false_is_honoured_only_where_said_and_warned_about(
    https_simulator: str,
) -> None:
    with capture_logs() as logs:
        async with SessionPool() as sessions:
            unchecked = sessions.get(TlsSettings(verify=False), setting="dli.tls")
            assert await list_through(unchecked, https_simulator) == 1
            sink = WebhookSink(
                "hook",
                f"{https_simulator}/hook",
                session=sessions.get(None, setting="sinks[0].tls"),
                project_id=PROJECT,
            )
            with pytest.raises(SinkError) as info:
                await sink.send(notification())
    assert info.value.kind == "tls"
    warnings = [e for e in logs if e["event"] == "TLS verification is off for an endpoint"]
    assert [w["setting"] for w in warnings] == ["dli.tls"]


def config_with(tls: dict[str, Any]) -> Any:
    return parse_settings(
        {
            "dli": {
                "endpoint": "https://dli.example.invalid",
                "project_id": PROJECT,
                "auth": {"type": "none"},
                "tls": tls,
            },
            "queues": ["etl"],
        }
    )


def test_tls_settings_are_checked_with_their_key_path(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert config_with({"ca_file": str(bundle)}).dli.tls.ca_file == bundle
    for wrong in (
        {"ca_file": str(tmp_path / "missing.pem")},
        {"ca_file": str(bundle), "verify": False},
    ):
        with pytest.raises(ConfigError) as info:
            config_with(wrong)
        assert "dli.tls" in str(info.value)
