"""A real Alertmanager for tests: the Debian `prometheus-alertmanager` binary on loopback.

Usage::

    binary = require_tool("prometheus-alertmanager")
    async with Receiver() as receiver, RealAlertmanager(binary, receiver.url, tmp_path) as am:
        am.url                      # http://127.0.0.1:<port>, for the sink
        await am.alerts()           # GET /api/v2/alerts (what Alertmanager holds now)
        await am.wait_for(receiver, lambda p: p["status"] == "resolved")

Alertmanager runs with clustering off (`--cluster.listen-address=`), a temporary storage
directory, and one route to the webhook receiver (`send_resolved: true`) grouped by job id with
`group_wait`/`group_interval` of 1 s, so a posted alert reaches the receiver in about a second.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.receiver import Receiver

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0

CONFIG = """\
global:
  resolve_timeout: 5m
route:
  receiver: hook
  group_by: [alertname, job_id]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
        send_resolved: true
        max_alerts: 0
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RealAlertmanager:
    """Starts `prometheus-alertmanager` on a free loopback port; use as `async with`."""

    def __init__(self, binary: str, receiver_url: str, workdir: Path) -> None:
        self._binary = binary
        self._receiver_url = receiver_url
        self._workdir = workdir / "alertmanager"
        self._process: asyncio.subprocess.Process | None = None
        self._port = 0

    async def __aenter__(self) -> RealAlertmanager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The base URL (`http://127.0.0.1:<port>`)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def log_path(self) -> Path:
        """Where Alertmanager's stdout and stderr go."""
        return self._workdir / "alertmanager.log"

    async def start(self) -> None:
        """Write the config, start the binary and wait until `/-/ready` answers 200."""
        self._workdir.mkdir(parents=True, exist_ok=True)
        config = self._workdir / "alertmanager.yml"
        config.write_text(CONFIG.format(url=self._receiver_url))
        for _ in range(3):  # the free port can be taken between probe and bind: try again
            self._port = free_port()
            with self.log_path.open("ab") as log:
                self._process = await asyncio.create_subprocess_exec(
                    self._binary,
                    f"--config.file={config}",
                    f"--storage.path={self._workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self._port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                    stdout=log,
                    stderr=log,
                )
            if await self._wait_ready():
                return
            await self.stop()
        raise AssertionError(f"alertmanager did not start:\n{self._log_tail()}")

    async def stop(self) -> None:
        """Terminate the process (kill it when it lingers) and reap it."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            if process is not None:
                await process.wait()
            return
        process.terminate()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now (`GET /api/v2/alerts`, resolved ones included)."""
        params = {"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/api/v2/alerts", params=params) as response,
        ):
            response.raise_for_status()
            alerts: list[dict[str, Any]] = await response.json()
            return alerts

    @staticmethod
    async def wait_for(
        receiver: Receiver, predicate: Callable[[Any], bool], timeout: float = 10.0
    ) -> Any:
        """The first receiver payload matching `predicate`, waiting up to `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for payload in receiver.payloads():
                        if isinstance(payload, dict) and predicate(payload):
                            return payload
                    await receiver.wait_for_requests(len(receiver.received) + 1, timeout)
        except (TimeoutError, AssertionError):
            raise AssertionError(
                f"no matching notification within {timeout}s; got {receiver.payloads()}"
            ) from None

    async def _wait_ready(self) -> bool:
        """Poll `/-/ready` until 200 (True), or the process exits or time runs out (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        async with aiohttp.ClientSession() as session:
            while loop.time() < deadline:
                if self._process is None or self._process.returncode is not None:
                    return False
                try:
                    async with session.get(
                        f"{self.url}/-/ready", timeout=aiohttp.ClientTimeout(total=1)
                    ) as response:
                        if response.status == 200:
                            return True
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"
