"""The `dli-monitor` command as a user runs it: real processes, real signals, real sockets.

Config errors exit 2 with every key path; canary secrets never reach stdout, stderr or the
logs; `once` polls and exits by the result; `run` serves probes and drains on SIGTERM;
`demo` comes up ready with no config at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.cli_support import offline_config
from tests.conftest import PROJECT, SK, Harness

CANARY_WEBHOOK = "https://hooks.example.invalid/CANARY-WEBHOOK-TOKEN-42"
CANARY_HEADER = "CANARY-HEADER-VALUE-77"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


async def test_version_prints_the_package_version() -> None:
    from monitor import __version__

    code, out, _ = await run_cli("--version")
    assert code == 0
    assert __version__ in out


async def test_an_invalid_config_exits_2_and_lists_every_problem_with_its_key_path(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path / "bad.yaml",
        {
            "dli": {"endpoint": "not a url", "project_id": PROJECT, "page_size": 0},
            "queues": [],
            "poll": {"interval": "5x"},
            "sinks": [{"name": "ops", "type": "webhook"}],
        },
    )
    code, out, err = await run_cli("check-config", "--config", str(config))
    assert code == 2
    for path in (
        "dli.endpoint",
        "dli.page_size",
        "dli.auth",
        "queues",
        "poll.interval",
        "sinks[0].url",
    ):
        assert path in err, f"{path} missing from:\n{err}"
    assert out == ""


async def test_a_missing_config_file_exits_2(tmp_path: Path) -> None:
    code, _, err = await run_cli("check-config", "--config", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "nope.yaml" in err


async def test_the_config_path_can_come_from_the_environment(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        offline_config(PROJECT, sinks=[{"name": "out", "type": "console"}]),
    )
    code, out, _ = await run_cli("check-config", env={"DLI_MONITOR_CONFIG": str(config)})
    assert code == 0
    assert "config is valid" in out


async def test_check_config_masks_every_secret(tmp_path: Path) -> None:
    (tmp_path / "sk").write_text(SK + "\n")
    config = write_config(
        tmp_path / "c.yaml",
        {
            "dli": {
                "endpoint": "https://dli.cn-north-4.myhuaweicloud.com",
                "project_id": PROJECT,
                "auth": {"type": "aksk", "access_key": "${TEST_AK}", "secret_key_file": "sk"},
            },
            "queues": ["etl"],
            "sinks": [
                {
                    "name": "ops",
                    "type": "webhook",
                    "url": "${OPS_URL}",
                    "headers": {"Authorization": CANARY_HEADER},
                }
            ],
        },
    )
    env = {"TEST_AK": "CANARY-AK-0000000001", "OPS_URL": CANARY_WEBHOOK}
    code, out, err = await run_cli("check-config", "--config", str(config), env=env)
    assert code == 0, err
    for canary in (SK, "CANARY-AK-0000000001", "CANARY-WEBHOOK-TOKEN-42", CANARY_HEADER):
        assert canary not in out + err
    assert "hooks.example.invalid" in out  # the host stays readable


async def test_once_polls_delivers_and_never_logs_a_secret(
    live_harness: Harness, tmp_path: Path
) -> None:
    job = live_harness.world.add_job(queue="etl", name="x", state="running")
    data = live_harness.config()
    data["sinks"].append(
        {
            "name": "canary",
            "type": "webhook",
            "url": live_harness.receiver.url + "?token=CANARY-Q-9",
            "headers": {"X-Token": CANARY_HEADER},
        }
    )
    config = write_config(tmp_path / "c.yaml", data)
    code, out, err = await run_cli("--log-level", "debug", "once", "--config", str(config))
    assert code == 0, err
    assert "etl: ok" in out
    live_harness.world.set_state(job.id, "dead")
    # The secret key is also what a failing signature would show: make the simulator reject one.
    code, out, err = await run_cli("--log-level", "debug", "once", "--config", str(config))
    assert code == 0, err
    assert len(live_harness.receiver.payloads()) == 2
    for canary in (SK, "CANARY-Q-9", CANARY_HEADER):
        assert canary not in out + err


async def test_once_exits_1_when_a_queue_cannot_be_polled(
    live_harness: Harness, tmp_path: Path
) -> None:
    data = live_harness.config()
    data["dli"]["auth"]["secret_key"] = "CANARY-WRONG-SK-0001"
    config = write_config(tmp_path / "c.yaml", data)
    code, out, err = await run_cli("once", "--config", str(config))
    assert code == 1
    assert "FAILED" in out
    assert "CANARY-WRONG-SK-0001" not in out + err
    # exactly one request: a rejected signature is never retried (5 failures lock the key)
    assert len([r for r in live_harness.world.requests if r.status == 401]) == 1


async def _wait_http(url: str, proc: asyncio.subprocess.Process, timeout: float = 20) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"process exited early with {proc.returncode}")
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return resp.status
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


async def test_run_serves_probes_and_drains_on_sigterm(
    live_harness: Harness, tmp_path: Path
) -> None:
    job = live_harness.world.add_job(queue="etl", name="x", state="running")
    port = free_port()
    data = live_harness.config(server={"listen": f"127.0.0.1:{port}", "enabled": True})
    data["poll"]["interval"] = "1s"
    config = write_config(tmp_path / "c.yaml", data)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "--log-format",
        "json",
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await _wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        await _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        live_harness.world.set_state(job.id, "dead")
        await live_harness.receiver.wait_for_requests(1, timeout=20)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            text = await resp.text()
        etl = 'project="default",queue="etl",region="local"'
        assert f'dli_batch_jobs{{{etl},state="dead"}} 1.0' in text
        assert 'dli_monitor_project_up{project="default",region="local"} 1.0' in text
        assert 'dli_monitor_shard_info{shard="0",total_shards="1"} 1.0' in text
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    lines = [json.loads(line) for line in (out + err).decode().splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert "shutting down" in events
    assert "monitor stopped" in events
    assert SK not in (out + err).decode()
    assert len(live_harness.receiver.payloads()) == 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_demo_comes_up_ready_without_any_config(sig: signal.Signals, tmp_path: Path) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "demo",
        "--listen",
        f"127.0.0.1:{port}",
        "--interval",
        "1s",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        await _wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        proc.send_signal(sig)
        await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 - the demo leaves no state file behind


# --- projects and shards ---------------------------------------------------------------------


def listed(harness: Harness, queues: list[str]) -> dict[str, Any]:
    """The harness's config with its project as the one entry of a `dli:` list named `lab`."""
    data = harness.config()
    data["dli"] = [{**data.pop("dli"), "name": "lab", "region": "sim-1", "queues": queues}]
    del data["queues"]
    return data


async def test_check_config_names_each_project_with_region_endpoint_and_queues(
    harness: Harness, tmp_path: Path
) -> None:
    single = write_config(tmp_path / "single.yaml", harness.config())
    code, out, err = await run_cli("check-config", "--config", str(single))
    assert code == 0, err
    assert "# 1 DLI project(s), from a single `dli:` mapping:" in out
    assert "#   default: region local, endpoint http://127.0.0.1:" in out
    assert "queues etl (state keys: etl)" in out
    many = write_config(tmp_path / "listed.yaml", listed(harness, ["etl", "adhoc"]))
    code, out, err = await run_cli("check-config", "--config", str(many))
    assert code == 0, err
    assert "# 1 DLI project(s), from a `dli:` list:" in out
    assert "#   lab: region sim-1, endpoint http://127.0.0.1:" in out
    assert "queues etl, adhoc (state keys: lab/etl, lab/adhoc)" in out
    assert out.endswith("config is valid\n")
    assert SK not in out + err


@pytest.mark.parametrize(
    ("flags", "pod", "message"),
    [
        (["--shard", "1"], None, "--shard 1 needs --total-shards"),
        (["--shard", "3", "--total-shards", "3"], None, "--shard 3 is out of range"),
        (["--total-shards", "0"], None, "--total-shards must be at least 1"),
        (["--total-shards", "3"], None, "POD_NAME"),
        (["--total-shards", "3"], "dli-batch-monitor", "does not end in a StatefulSet ordinal"),
        (["--total-shards", "2"], "dli-batch-monitor-2", "has ordinal 2 but --total-shards is 2"),
    ],
)
def test_bad_shard_flags_exit_2_with_a_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    pod: str | None,
    message: str,
) -> None:
    from monitor.cli import main

    config = write_config(
        tmp_path / "c.yaml",
        offline_config(PROJECT),
    )
    if pod is None:
        monkeypatch.delenv("POD_NAME", raising=False)
    else:
        monkeypatch.setenv("POD_NAME", pod)
    for command in ("once", "run"):
        assert main(["--log-format", "json", command, "--config", str(config), *flags]) == 2
        assert message in capsys.readouterr().err


async def test_once_as_a_statefulset_pod_polls_only_the_targets_its_shard_owns(
    live_harness: Harness, tmp_path: Path
) -> None:
    from monitor.shard import shard_of

    queues = [f"q{index}" for index in range(8)]
    config = write_config(tmp_path / "c.yaml", listed(live_harness, queues))
    seen: dict[int, set[str]] = {}
    for ordinal in range(2):
        env = {"POD_NAME": f"dli-batch-monitor-{ordinal}"}
        code, out, err = await run_cli(
            "once", "--config", str(config), "--total-shards", "2", env=env
        )
        assert code == 0, err
        seen[ordinal] = {line.split(":")[0] for line in out.splitlines() if ": ok;" in line}
    expected = {i: {f"lab/{q}" for q in queues if shard_of(f"lab/{q}", 2) == i} for i in range(2)}
    assert seen == expected
    assert seen[0] | seen[1] == {f"lab/{q}" for q in queues} and not seen[0] & seen[1]


async def test_silence_add_with_a_project_mutes_that_project_only(
    harness: Harness, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "c.yaml", listed(harness, ["etl"]))
    code, out, err = await run_cli(
        "silence", "add", "--config", str(config), "--job-name", ".*", "--project", "lab",
        "--for", "1h",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = await run_cli("silence", "list", "--config", str(config))
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split("\t")[3:5] == ["PROJECT", "QUEUE"]
    assert row.split("\t")[3:5] == ["lab", "*"]
    code, _, err = await run_cli(
        "silence", "add", "--config", str(config), "--job-name", ".*", "--project", "a/b",
        "--for", "1h",
    )  # fmt: skip
    assert code == 2
    assert "project glob" in err
