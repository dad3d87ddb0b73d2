"""End to end with a real Prometheus: simulator → daemon process → scrape → rules → alert.

The DLI simulator runs in the test, the daemon as `python -m monitor run` (1 s interval), and
Debian's Prometheus on loopback scrapes it every second with the rule groups of
`deploy/prometheusrule.yaml` loaded. Everything is asserted through Prometheus' HTTP API: the
job gauge and the transitions counter follow a scripted `running → dead`, and the job-died
alert goes pending/firing. Skips without `prometheus` unless REQUIRE_TOOLS=1 (CI).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.conftest import Harness, require_tool
from tests.integration.test_cli import free_port, write_config

ROOT = Path(__file__).resolve().parents[2]

ETL = 'project="default",region="local",queue="etl"'
"""The labels of the harness's queue: the single `dli:` form names its project `default`."""


def rule_groups() -> dict[str, Any]:
    """The PrometheusRule's `spec` (its rule groups) as a plain Prometheus rules file."""
    rule = yaml.safe_load((ROOT / "deploy" / "base" / "prometheusrule.yaml").read_text())
    return {"groups": rule["spec"]["groups"]}


@asynccontextmanager
async def process(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def eventually(
    probe: Callable[[], Any], *, timeout: float = 30, what: str = "condition"
) -> Any:
    """Poll an async probe until it returns something truthy (no fixed sleeps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = await probe()
        if result:
            return result
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def test_prometheus_sees_the_death_and_the_job_died_alert_fires(
    live_harness: Harness, tmp_path: Path
) -> None:
    prometheus = require_tool("prometheus")
    job = live_harness.world.add_job(queue="etl", name="nightly_etl", state="running")
    metrics_port, prom_port = free_port(), free_port()
    data = live_harness.config(server={"listen": f"127.0.0.1:{metrics_port}", "enabled": True})
    data["poll"]["interval"] = "1s"
    config = write_config(tmp_path / "monitor.yaml", data)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rule_groups()))
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": ["rules.yml"],
                "scrape_configs": [
                    {
                        "job_name": "dli-batch-monitor",
                        "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                    }
                ],
            }
        )
    )
    api = f"http://127.0.0.1:{prom_port}/api/v1"

    async with (
        aiohttp.ClientSession() as http,
        process(sys.executable, "-m", "monitor", "run", "--config", str(config)),
        process(
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--rules.alert.resend-delay=1s",
            "--log.level=warn",
        ),
    ):

        async def value(query: str) -> float | None:
            try:
                async with http.get(f"{api}/query", params={"query": query}) as resp:
                    body = await resp.json()
            except aiohttp.ClientError:
                return None
            result = body.get("data", {}).get("result", [])
            return float(result[0]["value"][1]) if result else None

        async def running_seen() -> bool:
            return await value(f'dli_batch_jobs{{{ETL},state="running"}}') == 1.0

        await eventually(running_seen, what="the running job in Prometheus")
        live_harness.world.set_state(job.id, "dead")

        async def dead_seen() -> bool:
            dead = await value(f'dli_batch_jobs{{{ETL},state="dead"}}')
            moved = await value(
                f'dli_batch_job_transitions_total{{{ETL},from_state="running",to_state="dead"}}'
            )
            up = await value('dli_monitor_project_up{project="default",region="local"}')
            return dead == 1.0 and moved == 1.0 and up == 1.0

        await eventually(dead_seen, what="the death in the gauge and the counter")

        async def alert_state() -> str | None:
            async with http.get(f"{api}/alerts") as resp:
                alerts = (await resp.json())["data"]["alerts"]
            states = [
                (a["state"], a["labels"].get("project"))
                for a in alerts
                if a["labels"]["alertname"] == "DliBatchJobDied"
            ]
            return states[0][0] if states and states[0][1] == "default" else None

        state = await eventually(alert_state, what="the DliBatchJobDied alert")
        assert state in ("pending", "firing")
        assert await value(f'dli_batch_jobs{{{ETL},state="running"}}') == 0.0
