"""The DLI batch API client: three read calls over one request function that owns all retries.

`DliClient._request` is the single place where a DLI call is authenticated, budgeted, timed out,
retried (5xx, 408, timeouts, connection errors, 2xx bodies that are not a JSON object, with
backoff; 429 after `Retry-After`; one retry after a 401 when the authenticator got a fresh
token) and turned into a `DliError`. The URL sent is built from the same canonical query string
that is signed. Rows are returned raw; turning them into `Job`s is `dli.parse`, deciding what a
listing means is the poller's job.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
import yarl

from monitor import __version__
from monitor.dli.auth import Auth
from monitor.dli.budget import RequestBudget
from monitor.dli.errors import (
    DliAuthError,
    DliBadResponse,
    DliError,
    DliRequestError,
    DliTransportError,
    error_from_response,
    transport_code,
)
from monitor.dli.signer import canonical_query, encode
from monitor.models import Clock, utc_now
from monitor.retry_after import parse_retry_after

log = structlog.get_logger(__name__)

RequestObserver = Callable[[str, str], None]
"""Told about every attempt: (operation, code), code = HTTP status, or for an attempt with no
answer one of `TRANSPORT_CODES` (timeout, tls, connection_refused, connection_reset,
connection_error)."""

LIST_OPERATION = "list_batches"
STATE_OPERATION = "get_state"
DETAILS_OPERATION = "get_batch"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one DLI request is tried."""

    attempts: int = 4
    """Total tries per request, the first one included."""
    backoff: tuple[float, ...] = (1.0, 2.0, 4.0)
    """Seconds to wait before retry n; the last value repeats."""
    max_retry_after: float = 120.0
    """Cap on a server's `Retry-After`, in seconds."""

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (0-based)."""
        if not self.backoff:
            return 0.0
        return max(0.0, self.backoff[min(retry, len(self.backoff) - 1)])


@dataclass(frozen=True)
class BatchPage:
    """One page of `GET /batches`: the raw session dicts, and what the API said about them."""

    offset: int
    total: int | None
    rows: tuple[Mapping[str, Any], ...]
    malformed: int = 0
    """Rows that were not JSON objects and were left out of `rows`."""


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one attempt produced: an HTTP answer, or a transport failure code."""

    code: str
    status: int | None = None
    body: bytes = b""
    headers: Mapping[str, str] | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """Worth another try: transport failures but TLS, 408, 429, 5xx, and a 2xx whose body
        did not parse (truncated or replaced by a proxy's page; a real change of format fails
        every try and costs only the retries)."""
        if self.status is None:  # a certificate problem does not go away in seconds
            return self.code != "tls"
        return self.ok or self.status in (408, 429) or self.status >= 500


class DliClient:
    """Reads Spark batch jobs from one DLI project; every call goes through `_request`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        endpoint: str,
        project_id: str,
        auth: Auth,
        timeout_s: float = 10.0,
        budget: RequestBudget | None = None,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: RequestObserver | None = None,
        user_agent: str = f"dli-batch-monitor/{__version__}",
        clock: Clock = utc_now,
    ) -> None:
        self._session = session
        self._base = str(yarl.URL(endpoint)).rstrip("/") + f"/v2.0/{encode(project_id)}"
        self._auth = auth
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._budget = budget
        self._retry = retry
        self._sleep = sleep
        self._observer = observer
        self._clock = clock
        self.requests_sent = 0
        """Every attempt made so far (retries included), for per-cycle accounting."""
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": user_agent,
            "X-Project-Id": project_id,
        }

    async def list_batches(
        self, *, offset: int, size: int, queue_name: str | None = None, state: str | None = None
    ) -> BatchPage:
        """One page of batch jobs starting at item `offset` (operation "list_batches")."""
        params = [("from", str(offset)), ("size", str(size))]
        if queue_name is not None:
            params.append(("queue_name", queue_name))
        if state is not None:
            params.append(("state", state))
        body = await self._request(LIST_OPERATION, "/batches", params)
        sessions = body.get("sessions")
        if not isinstance(sessions, list):
            raise DliBadResponse(LIST_OPERATION, error_msg="'sessions' is not a list")
        rows = tuple(row for row in sessions if isinstance(row, Mapping))
        total = body.get("total")
        if not isinstance(total, int) or isinstance(total, bool):
            total = None
        return BatchPage(offset, total, rows, malformed=len(sessions) - len(rows))

    async def get_state(self, job_id: str) -> str:
        """The raw state string of one job; raises DliNotFound when the job is gone."""
        path = f"/batches/{_segment(STATE_OPERATION, job_id)}/state"
        body = await self._request(STATE_OPERATION, path)
        state = body.get("state")
        if not isinstance(state, str):
            raise DliBadResponse(STATE_OPERATION, error_msg="'state' is not a string")
        return state

    async def get_batch(self, job_id: str) -> Mapping[str, Any]:
        """The details of one job as the raw JSON object (operation "get_batch")."""
        path = f"/batches/{_segment(DETAILS_OPERATION, job_id)}"
        return await self._request(DETAILS_OPERATION, path)

    async def _request(
        self, operation: str, path: str, params: Sequence[tuple[str, str]] = ()
    ) -> dict[str, Any]:
        """GET one resource with every retry rule applied; returns the JSON object body."""
        query = canonical_query(params)
        url = yarl.URL(self._base + path + (f"?{query}" if query else ""), encoded=True)
        attempts = max(1, self._retry.attempts)
        attempt = retries = 0
        reauthenticated = False
        while True:
            attempt += 1
            answer = await self._attempt(url)
            self._observe(operation, answer.code)
            if answer.ok:
                try:
                    return _decode(operation, answer)
                except DliBadResponse as bad:  # a body cut short by a proxy: try again
                    error: DliError = bad
            else:
                error = _error_for(operation, answer)
            if answer.status == 401 and not reauthenticated:
                reauthenticated = True
                if await self._auth.on_unauthorized():
                    _log_failure(error, attempt, attempts, "got fresh credentials; will retry")
                    attempt -= 1
                    continue
            if not answer.retryable or isinstance(error, DliAuthError):
                raise error
            if attempt >= attempts:
                _log_failure(error, attempt, attempts, "escalating")
                raise error
            delay = self._delay(answer, retries)
            _log_failure(error, attempt, attempts, "will retry", delay=delay)
            retries += 1
            await self._sleep(delay)

    async def _attempt(self, url: yarl.URL) -> _Answer:
        """Send the request once; transport failures come back as an `_Answer` too."""
        if self._budget is not None:
            await self._budget.acquire()
        headers = await self._auth.headers("GET", url, self._headers, b"")
        self.requests_sent += 1
        try:
            async with self._session.get(
                url, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as resp:
                body = await resp.read()
                return _Answer(str(resp.status), resp.status, body, resp.headers)
        except TimeoutError:
            return _Answer("timeout", detail="no answer in time")
        except aiohttp.ClientError as exc:
            return _Answer(transport_code(exc), detail=type(exc).__name__)

    def _delay(self, answer: _Answer, retries: int) -> float:
        """Seconds before the next try: the server's Retry-After on 429, else the backoff."""
        fallback = self._retry.delay(retries)
        if answer.status != 429 or answer.headers is None:
            return fallback
        wait = parse_retry_after(answer.headers.get("Retry-After"), now=self._clock())
        if wait is None:
            return fallback
        return min(wait, self._retry.max_retry_after)

    def _observe(self, operation: str, code: str) -> None:
        """Report one attempt; a failing observer never breaks a request."""
        if self._observer is None:
            return
        try:
            self._observer(operation, code)
        except Exception:
            log.exception("request observer failed", operation=operation)

    def __repr__(self) -> str:
        return f"DliClient(auth={self._auth!r})"


def _segment(operation: str, job_id: str) -> str:
    """A job id as one encoded path segment; refuses ids that would change the path."""
    if job_id in ("", ".", ".."):
        raise DliRequestError(operation, error_msg=f"invalid job id {job_id!r}")
    return encode(job_id)


def _decode(operation: str, answer: _Answer) -> dict[str, Any]:
    """The JSON object of a 2xx answer; DliBadResponse for anything else."""
    request_id = answer.headers.get("X-Request-Id", "") if answer.headers else ""
    try:
        data = json.loads(answer.body)
    except ValueError:
        raise DliBadResponse(
            operation, status=answer.status, error_msg="body is not JSON", request_id=request_id
        ) from None
    if not isinstance(data, dict):
        raise DliBadResponse(
            operation,
            status=answer.status,
            error_msg=f"body is a JSON {type(data).__name__}, not an object",
            request_id=request_id,
        )
    return data


def _error_for(operation: str, answer: _Answer) -> DliError:
    """The error an unsuccessful answer stands for if it is the last one."""
    if answer.status is None:
        return DliTransportError(operation, error_code=answer.code, error_msg=answer.detail)
    return error_from_response(operation, answer.status, answer.body, answer.headers or {})


def _log_failure(
    error: DliError, attempt: int, attempts: int, outcome: str, *, delay: float | None = None
) -> None:
    """One warning per failed attempt, with fields that cannot hold a secret."""
    fields: dict[str, Any] = {
        "operation": error.operation,
        "status": error.status,
        "error_code": error.error_code,
        "request_id": error.request_id,
    }
    if delay is not None:
        fields["delay_s"] = delay
    log.warning(f"attempt #{attempt}/{attempts} failed; {outcome}", **fields)
