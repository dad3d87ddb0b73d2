"""What the DLI API answered, as metrics: requests by status code, failures by DLI error code.

`ApiMetrics` registers on the registry `Metrics` owns and is fed through
`Metrics.observe_api_request` and `Metrics.observe_api_error`. Error codes are labels only in
their documented shape (`DLI.0002`, `APIG.0308`) and only up to `MAX_ERROR_CODES` of them;
anything else is `other`, so an odd answer can never grow the series without bound or put a
token in a label.

Deliberately not here: how a target's poll went (`monitor.metrics_targets`), what a cycle's
requests cost (`monitor.metrics_poll`).
"""

from __future__ import annotations

import re
import threading

from prometheus_client import CollectorRegistry, Counter

from monitor.metrics_jobs import PROJECT_LABELS
from monitor.models import ProjectRef

TRANSPORT_ERROR_CODES = frozenset({"timeout", "connection_error"})
"""Error codes the client uses when no answer came; kept as they are."""

MAX_ERROR_CODES = 100
"""Distinct API error codes kept as labels; later new codes are counted as `other`."""

_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9]{1,9}\.[0-9]{1,6}")


class ApiMetrics:
    """DLI API requests and failed requests, by project and operation, on the monitor's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "dli_monitor_api_requests",
            "Requests sent to the DLI API, by project, operation and HTTP status code (or error"
            " kind).",
            [*PROJECT_LABELS, "operation", "code"],
            registry=registry,
        )
        self._errors = Counter(
            "dli_monitor_api_errors",
            "Failed DLI API requests by project, operation and DLI error code (other = no or odd"
            " code).",
            [*PROJECT_LABELS, "operation", "error_code"],
            registry=registry,
        )
        self._error_codes: set[str] = set()
        self._codes_lock = threading.Lock()

    def observe_request(self, operation: str, code: str, *, project: ProjectRef) -> None:
        """Count one DLI API request attempt of a project."""
        self._requests.labels(project.name, project.region, operation, code).inc()

    def observe_error(self, operation: str, error_code: str, *, project: ProjectRef) -> None:
        """Count one failed DLI API request by its error code, folded to a bounded label."""
        folded = self._fold(error_code)
        self._errors.labels(project.name, project.region, operation, folded).inc()

    def _fold(self, error_code: str) -> str:
        """The error code as a bounded label: known shapes kept (up to a limit), else `other`."""
        code = error_code.strip()
        if code in TRANSPORT_ERROR_CODES:
            return code
        if not _ERROR_CODE.fullmatch(code):
            return "other"
        with self._codes_lock:
            if code not in self._error_codes and len(self._error_codes) >= MAX_ERROR_CODES:
                return "other"
            self._error_codes.add(code)
        return code
