"""What the fault soak's daemon runs with: its config and the timeouts the faults are drawn against.

Every queue of scenario ``soak``, ``poll.mode: incremental``, IAM token auth against the
simulator, unlimited requests, short DLI retries, its HTTP server on a free loopback port, one
webhook sink. Starting the daemon and the faults is `soak`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import scale_support as sup
from benchmarks.scale_sim import IAM_DOMAIN, IAM_PASSWORD, IAM_USER

PAGE_SIZE = 20
REQUEST_TIMEOUT_S = 2.0
DELIVERY_TIMEOUT_S = 3.0
IAM_USER_CONFIG = {"domain_name": IAM_DOMAIN, "username": IAM_USER, "password": IAM_PASSWORD}


def daemon_config(
    interval: float, endpoint: str, project: str, hook: str, state: Path
) -> dict[str, Any]:
    """The daemon's config: every queue, incremental, IAM token, unlimited requests."""
    return {
        "dli": {
            "endpoint": endpoint,
            "project_id": project,
            "auth": {"type": "token", "iam_endpoint": endpoint, **IAM_USER_CONFIG},
            "page_size": PAGE_SIZE,
            "request_timeout": REQUEST_TIMEOUT_S,
            "max_requests_per_minute": 0,
            "retry": {"attempts": 3, "backoff": [0.5, 1.0]},
        },
        "queues": sup.queue_names(sup.SCENARIOS["soak"].queues),
        "poll": {"interval": interval, "mode": "incremental", "failure_retry": 1.0},
        "state": {"path": str(state)},
        "server": {"enabled": True, "listen": "127.0.0.1:0"},
        "delivery": {"backoff": [1.0, 2.0, 4.0, 8.0], "timeout": DELIVERY_TIMEOUT_S},
        "shutdown_timeout": 5.0,
        "rules": {"stuck_starting_after": 0, "stuck_recovering_after": 0, "overdue_factor": 0},
        "sinks": [{"name": "soak", "type": "webhook", "url": hook}],
    }
