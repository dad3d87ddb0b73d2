"""Every secret setting holds a canary, and no canary shows anywhere a person or a scraper looks.

The config below gives each secret field of the schema its own canary value. A meta-test walks
the pydantic models and fails when a secret field exists that this config does not fill, so a
new secret setting cannot go untested. The places looked at: `check-config` (stdout, stderr),
the error listing of a config with problems, and a running daemon's logs, `/metrics` and
`/api/status` (guarded by the server's own canary token) after it polled and delivered. Each
check runs with a single `dli:` mapping and with a `dli:` list of projects (one of them with
IAM-token credentials that cannot work, so its failures are logged too).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import typing
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import BaseModel, SecretStr

from monitor.config import DliProjectSettings, Settings, parse_settings
from tests.conftest import AK, SK, Harness
from tests.integration.test_cli import run_cli, write_config

CANARIES = {
    "sk": SK,
    "dli_token_password": "CANARY-IAM-PASSWORD-0001",
    "security_token": "CANARY-SECURITY-TOKEN-0001",
    "webhook_url": "CANARY-WEBHOOK-PATH-TOKEN-0001",
    "webhook_header": "CANARY-WEBHOOK-HEADER-0001",
    "webhook_secret": "CANARY-WEBHOOK-SIGNING-0001",
    "dingtalk_url": "CANARY-DINGTALK-TOKEN-0001",
    "dingtalk_secret": "CANARY-DINGTALK-SECRET-0001",
    "feishu_url": "CANARY-FEISHU-TOKEN-0001",
    "feishu_secret": "CANARY-FEISHU-SECRET-0001",
    "wecom_url": "CANARY-WECOM-KEY-0001",
    "slack_url": "CANARY-SLACK-TOKEN-0001",
    "teams_url": "CANARY-TEAMS-SIG-0001",
    "discord_url": "CANARY-DISCORD-TOKEN-0001",
    "am_password": "CANARY-AM-PASSWORD-0001",
    "am_bearer": "CANARY-AM-BEARER-0001",
    "server_token": "CANARY-SERVER-TOKEN-0001",
    "server_password": "CANARY-SERVER-PASSWORD-0001",
    "listed_sk": "CANARY-LISTED-PROJECT-SK-0001",
    "listed_password": "CANARY-LISTED-PROJECT-IAM-PASSWORD-0001",
    "state_password": "CANARY-POSTGRES-PASSWORD-0001",
}


def chat(kind: str, url_key: str, **extra: Any) -> dict[str, Any]:
    """A chat sink on a host nobody answers (loopback port 9), its URL token a canary."""
    return {
        "name": kind,
        "type": kind,
        "url": f"http://127.0.0.1:9/hook/{CANARIES[url_key]}",
        **extra,
    }


def every_secret_config(harness: Harness) -> dict[str, Any]:
    """The harness's config with every kind of secret setting filled with a canary."""
    data = harness.config()
    data["dli"]["auth"] = {
        "type": "aksk",
        "access_key": AK,
        "secret_key": SK,
        "security_token": CANARIES["security_token"],
    }
    data["sinks"] = [
        {
            "name": "hook",
            "type": "webhook",
            "url": f"{harness.receiver.url}?token={CANARIES['webhook_url']}",
            "headers": {"Authorization": f"Bearer {CANARIES['webhook_header']}"},
            "secret": CANARIES["webhook_secret"],
        },
        chat("dingtalk", "dingtalk_url", secret=CANARIES["dingtalk_secret"]),
        chat("feishu", "feishu_url", secret=CANARIES["feishu_secret"]),
        chat("wecom", "wecom_url"),
        chat("slack", "slack_url"),
        chat("teams", "teams_url"),
        chat("discord", "discord_url"),
        {
            "name": "am",
            "type": "alertmanager",
            "url": "http://127.0.0.1:9",
            "basic_auth": {"username": "am", "password": CANARIES["am_password"]},
        },
        {
            "name": "am2",
            "type": "alertmanager",
            "url": "http://127.0.0.1:9",
            "bearer_token": CANARIES["am_bearer"],
        },
    ]
    data["server"] = {
        "listen": "127.0.0.1:0",
        "auth": {"bearer_token": CANARIES["server_token"]},
    }
    return data


def token_auth_config(harness: Harness) -> dict[str, Any]:
    """The IAM-token form of auth and basic auth on the server, the other secret fields."""
    data = every_secret_config(harness)
    data["dli"]["auth"] = {
        "type": "token",
        "iam_endpoint": "http://127.0.0.1:9",
        "domain_name": "acme",
        "username": "monitor",
        "password": CANARIES["dli_token_password"],
    }
    data["server"]["auth"] = {"username": "prom", "password": CANARIES["server_password"]}
    return data


def postgres_state_config(harness: Harness) -> dict[str, Any]:
    """State on PostgreSQL with its password: read by the config tests only (a daemon run would
    need the server; the store's own tests keep the password out of its errors)."""
    data = every_secret_config(harness)
    data["state"] = {
        "url": "postgresql://monitor@127.0.0.1:9/dli_monitor",
        "password": CANARIES["state_password"],
    }
    return data


def listed_config(harness: Harness) -> dict[str, Any]:
    """`every_secret_config` with `dli:` as a list: the harness's project, a second AK/SK one
    and one whose IAM token can never be had, each with secrets of its own."""
    data = every_secret_config(harness)
    first = data.pop("dli")
    second = {
        **first,
        "name": "second",
        "region": "local-2",
        "auth": {
            "type": "aksk",
            "access_key": "AKSECOND00000000001",
            "secret_key": CANARIES["listed_sk"],
        },
        "queues": ["adhoc"],
    }
    third = {
        **first,
        "name": "iam",
        "region": "local-3",
        "auth": {
            "type": "token",
            "iam_endpoint": "http://127.0.0.1:9",
            "domain_name": "acme",
            "username": "monitor",
            "password": CANARIES["listed_password"],
        },
        "queues": ["etl"],
    }
    data["dli"] = [
        {**first, "name": "main", "region": "local", "queues": data.pop("queues")},
        second,
        third,
    ]
    return data


FORMS = {"single": every_secret_config, "listed": listed_config}


def secret_fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted names of every SecretStr field reachable from `model` (union members included)."""
    found: set[str] = set()
    for name, field in model.model_fields.items():
        for kind in _types(field.annotation):
            if kind is SecretStr:
                found.add(f"{model.__name__}.{name}")
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                found |= secret_fields(kind, prefix)
    return found


def _types(annotation: Any) -> list[Any]:
    """The plain types inside an annotation (unwrapping Annotated, unions, lists, dicts)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _types(typing.get_args(annotation)[0])
    if origin is None:
        return [annotation]
    return [t for arg in typing.get_args(annotation) for t in _types(arg)]


def filled_secret_fields(settings: BaseModel) -> set[str]:
    """Dotted names of the SecretStr fields that hold a value in these settings."""
    found: set[str] = set()

    def visit(value: object) -> None:
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                item = getattr(value, name)
                values = item.values() if isinstance(item, dict) else [item]
                if any(isinstance(v, SecretStr) and v.get_secret_value() for v in values):
                    found.add(f"{type(value).__name__}.{name}")
                visit(item)
        elif isinstance(value, list | dict):
            for item in value.values() if isinstance(value, dict) else value:
                visit(item)

    visit(settings)
    return found


def test_the_canary_configs_fill_every_secret_field_of_the_schema(harness: Harness) -> None:
    filled = filled_secret_fields(parse_settings(every_secret_config(harness)))
    filled |= filled_secret_fields(parse_settings(token_auth_config(harness)))
    filled |= filled_secret_fields(parse_settings(postgres_state_config(harness)))
    assert secret_fields(Settings) - filled == set()


def test_the_list_form_fills_every_secret_field_of_a_project(harness: Harness) -> None:
    settings = parse_settings(listed_config(harness))
    assert [project.name for project in settings.projects] == ["main", "second", "iam"]
    project_secrets = secret_fields(DliProjectSettings)
    assert {"AkSkAuthSettings.secret_key", "TokenAuthSettings.password"} <= project_secrets
    assert project_secrets - filled_secret_fields(settings) == set()


def assert_no_canary(text: str) -> None:
    leaked = [name for name, value in CANARIES.items() if value in text]
    assert leaked == [], f"secrets leaked: {leaked}"


async def test_check_config_shows_no_secret(harness: Harness, tmp_path: Path) -> None:
    forms = (
        every_secret_config(harness),
        token_auth_config(harness),
        postgres_state_config(harness),
        listed_config(harness),
    )
    for index, data in enumerate(forms):
        config = write_config(tmp_path / f"c{index}.yaml", data)
        code, out, err = await run_cli("check-config", "--config", str(config))
        assert code == 0, err
        assert_no_canary(out + err)
    assert "#   iam: region local-3, endpoint http://127.0.0.1:" in out


async def test_config_errors_show_no_secret(harness: Harness, tmp_path: Path) -> None:
    data = every_secret_config(harness)
    data["dli"]["page_size"] = "many"  # one problem elsewhere
    data["sinks"][0]["url"] = f"ftp://x/{CANARIES['webhook_url']}"  # and one in a secret
    config = write_config(tmp_path / "bad.yaml", data)
    code, out, err = await run_cli("check-config", "--config", str(config))
    assert code == 2
    assert_no_canary(out + err)
    listed = listed_config(harness)
    listed["dli"][1]["page_size"] = "many"
    listed["dli"][2]["auth"]["password"] = ""  # a secret that is wrong, at its key path
    config = write_config(tmp_path / "bad-listed.yaml", listed)
    code, out, err = await run_cli("check-config", "--config", str(config))
    assert code == 2
    assert "dli[1].page_size" in err and "dli[2].auth.password" in err
    assert_no_canary(out + err)


@pytest.mark.parametrize("form", sorted(FORMS))
async def test_a_running_daemon_shows_no_secret_in_logs_metrics_or_status(
    live_harness: Harness, tmp_path: Path, form: str
) -> None:
    job = live_harness.world.add_job(queue="etl", name="x", state="running")
    data = FORMS[form](live_harness)
    data["poll"] = {"interval": "1s"}
    config = write_config(tmp_path / "c.yaml", data)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "--log-format", "json", "--log-level", "debug",
        "run", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    lines: list[str] = []
    loop = asyncio.get_running_loop()
    listening, baselined = loop.create_future(), loop.create_future()
    reader = asyncio.create_task(_read(process, lines, listening, baselined))
    try:
        port = await asyncio.wait_for(listening, 20)
        await asyncio.wait_for(baselined, 20)
        live_harness.world.set_state(job.id, "dead")
        await live_harness.receiver.wait_for_requests(1, timeout=20)
        headers = {"Authorization": f"Bearer {CANARIES['server_token']}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            metrics = await (await session.get(f"http://127.0.0.1:{port}/metrics")).text()
            status = await (await session.get(f"http://127.0.0.1:{port}/api/status")).text()
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
        await reader
    assert "dli_monitor_build_info" in metrics and '"version"' in status
    assert any("sink failing" in line for line in lines)  # the chat sinks' errors were logged
    assert_no_canary(metrics)
    assert_no_canary(status)
    assert_no_canary("\n".join(lines))


async def _read(
    process: Any,
    lines: list[str],
    listening: asyncio.Future[int],
    baselined: asyncio.Future[None],
) -> None:
    """Collect the daemon's output lines; resolve `listening` with its HTTP port and
    `baselined` once the first cycle recorded its baseline."""
    assert process.stdout is not None
    async for raw in process.stdout:
        line = raw.decode(errors="replace")
        lines.append(line)
        if not listening.done() and '"http server listening"' in line:
            listening.set_result(int(json.loads(line)["port"]))
        if not baselined.done() and '"baseline recorded"' in line:
            baselined.set_result(None)
    for future in (listening, baselined):
        if not future.done():
            future.set_exception(AssertionError("the daemon ended too early"))
