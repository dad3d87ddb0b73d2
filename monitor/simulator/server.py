"""The simulator's HTTP face: DLI's Spark batch API over a `World`, as aiohttp routes.

Serves `GET /v2.0/{project_id}/batches` (paging, filters, `order=CREATE_TIME_DESC|ASC`; the
world's `total_mode`/`list_order` knobs shape the answer), `GET .../batches/{id}`,
`.../state`, `.../log` and `DELETE .../batches/{id}` with DLI's field names and error bodies.
One middleware plays the API gateway in front of it: routing errors (404 APIG.0101), the
authentication of `iam` (AK/SK signatures, 401 APIG.0301/0303; or IAM tokens, 401
APIG.0301/0307, with `POST /v3/auth/tokens` served beside the API), the armed faults (a
`reset` rule drops the connection unanswered), `X-Request-Id` on every answer, and the request
log. Job state itself lives in `world`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import parse_qsl

from aiohttp import web

from monitor.models import Clock
from monitor.simulator.faults import FaultRule
from monitor.simulator.iam import IAM_OPERATION, IAM_TOKENS_PATH, AkSkGate, TokenIssuer
from monitor.simulator.world import RecordedRequest, SimJob, World

AuthMode = Literal["none", "aksk", "token"]

DEFAULT_PAGE = 100
MAX_PAGE = 1000
LOG_PAGE = 100
SPARK_VERSION = "3.3.1"
ORDER_DESC = "CREATE_TIME_DESC"
ORDER_ASC = "CREATE_TIME_ASC"

_BATCHES = "/v2.0/{project_id}/batches"
_BATCH = _BATCHES + "/{batch_id}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _ApiError(Exception):
    """An error answer a handler gives instead of its normal body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _Simulator:
    """The routes and the gateway middleware over one world."""

    def __init__(
        self,
        world: World,
        project_id: str,
        gate: AkSkGate | None,
        clock: Clock,
        tokens: TokenIssuer | None = None,
    ) -> None:
        self.world = world
        self.project_id = project_id
        self.gate = gate
        self.clock = clock
        self.tokens = tokens

    @web.middleware
    async def gateway(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Route check, authentication, faults, X-Request-Id and recording for every request."""
        request_id = uuid.uuid4().hex
        path = request.raw_path.split("?", 1)[0]
        pairs = _query_pairs(request)
        query = _first_values(pairs)
        operation = self._operation(request)
        if operation is None:
            response: web.StreamResponse = _apig(
                404, "APIG.0101", "The API does not exist or has not been published", request_id
            )
        else:
            response = await self._guarded(request, handler, operation, path, pairs, request_id)
        response.headers["X-Request-Id"] = request_id
        record = RecordedRequest(
            request.method, path, query, operation or "unknown", response.status
        )
        self.world.record(record, unknown=operation is None)
        return response

    def _operation(self, request: web.Request) -> str | None:
        """The operation a request addresses, or None for an unknown route or project."""
        info = request.match_info
        if info.http_exception is not None:
            return None
        if info.route.name == IAM_OPERATION:
            return IAM_OPERATION
        if info.get("project_id") != self.project_id:
            return None
        return info.route.name

    async def _guarded(
        self,
        request: web.Request,
        handler: Handler,
        operation: str,
        path: str,
        pairs: Sequence[tuple[str, str]],
        request_id: str,
    ) -> web.StreamResponse:
        if operation == IAM_OPERATION:  # IAM is its own service: no gateway rules, no faults
            return await handler(request)
        problem = None
        if self.gate is not None:
            problem = self.gate.check(request.method, path, pairs, request, await request.read())
        elif self.tokens is not None:
            problem = self.tokens.check(request.headers.get("X-Auth-Token"))
        if problem is not None:
            return _apig(401, problem[0], problem[1], request_id)
        offset, queue = self._fault_context(request, operation, _first_values(pairs))
        if operation == "list_batches" and offset is not None:
            self.world.apply_drift(offset, queue)
        seconds = self.world.faults.take_delay(operation, offset, queue)
        if seconds > 0:
            await asyncio.sleep(seconds)
        rule = self.world.faults.take_response(operation, offset, queue)
        if rule is not None:
            return _fault_response(rule, request, request_id)
        try:
            return await handler(request)
        except _ApiError as exc:
            return web.json_response(
                {"error_code": exc.code, "error_msg": exc.message}, status=exc.status
            )

    def _fault_context(
        self, request: web.Request, operation: str, query: Mapping[str, str]
    ) -> tuple[int | None, str | None]:
        """The list offset and the queue a fault rule may match this request by."""
        if operation == "list_batches":
            try:
                offset: int | None = int(query.get("from", "0"))
            except ValueError:
                offset = None
            return offset, query.get("queue_name") or query.get("cluster_name")
        job = self.world.jobs.get(request.match_info.get("batch_id", ""))
        return None, job.queue if job is not None else None

    async def list_batches(self, request: web.Request) -> web.Response:
        """`GET batches`: one page of matching jobs, newest first, with the total count.

        `order=CREATE_TIME_ASC` asks for oldest first; the world's `list_order` and
        `total_mode` knobs decide how faithfully the order is served and what `total` counts.
        """
        query = _first_values(_query_pairs(request))
        offset = _int_param(query, "from", 0, maximum=None)
        size = _int_param(query, "size", DEFAULT_PAGE, maximum=MAX_PAGE)
        ascending = _order_param(query)
        page, total = self.world.page(
            offset=offset,
            size=size,
            queue_name=query.get("queue_name") or None,
            cluster_name=query.get("cluster_name") or None,
            state=query.get("state") or None,
            job_name=query.get("job_name") or None,
            job_id=query.get("job-id") or None,
            owner=query.get("owner") or None,
            ascending=ascending,
        )
        return web.json_response(
            {
                "from": offset,
                "total": len(page) if self.world.total_mode == "page" else total,
                "sessions": [_session(job) for job in page],
                "create_time": self.world.now_ms(),
            }
        )

    async def get_batch(self, request: web.Request) -> web.Response:
        """`GET batches/{id}`: the details of one job."""
        job = self._job(request)
        details = _session(job)
        del details["duration"]
        details.update(feature="basic", spark_version=SPARK_VERSION)
        return web.json_response(details)

    async def get_state(self, request: web.Request) -> web.Response:
        """`GET batches/{id}/state`: just the id and the raw state."""
        job = self._job(request)
        return web.json_response({"id": job.id, "state": job.state})

    async def get_log(self, request: web.Request) -> web.Response:
        """`GET batches/{id}/log`: a window of the job's log lines (default: the last 100)."""
        job = self._job(request)
        query = _first_values(_query_pairs(request))
        total = len(job.log)
        start = _int_param(query, "from", max(0, total - LOG_PAGE), maximum=None)
        size = _int_param(query, "size", LOG_PAGE, maximum=MAX_PAGE)
        lines = job.log[start : start + size]
        return web.json_response({"id": job.id, "from": start, "total": total, "log": lines})

    async def cancel_batch(self, request: web.Request) -> web.Response:
        """`DELETE batches/{id}`: a job still active ends as `dead`."""
        job = self._job(request)
        if job.is_final:
            message = f"The job {job.id} is in state {job.state} and cannot be cancelled."
            raise _ApiError(400, "DLI.0007", message)
        self.world.set_state(job.id, "dead", log_line="YARN Diagnostics: Job killed by user")
        return web.json_response({"msg": "deleted"})

    def _job(self, request: web.Request) -> SimJob:
        batch_id = request.match_info["batch_id"]
        job = self.world.jobs.get(batch_id)
        if job is None:
            raise _ApiError(400, "DLI.0002", f"The job {batch_id} does not exist.")
        return job


def _query_pairs(request: web.Request) -> list[tuple[str, str]]:
    """The query as the gateway sees it for signing: decoded pairs, blanks kept, in order."""
    return parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)


def _first_values(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The query as a dict; a repeated parameter keeps its first value."""
    query: dict[str, str] = {}
    for name, value in pairs:
        query.setdefault(name, value)
    return query


def _int_param(query: Mapping[str, str], name: str, default: int, *, maximum: int | None) -> int:
    """An integer query parameter; DLI.0001 when it is not a non-negative integer in range."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _ApiError(
            400, "DLI.0001", f"Parameter check error: {name} must be an integer."
        ) from None
    if value < 0 or (maximum is not None and value > maximum):
        limit = f"0..{maximum}" if maximum is not None else ">= 0"
        raise _ApiError(400, "DLI.0001", f"Parameter check error: {name} must be {limit}.")
    return value


def _order_param(query: Mapping[str, str]) -> bool:
    """True when `order` asks for oldest first; DLI.0001 for a value other than CREATE_TIME_*."""
    raw = query.get("order") or ORDER_DESC
    if raw not in (ORDER_DESC, ORDER_ASC):
        raise _ApiError(
            400,
            "DLI.0001",
            f"Parameter check error: order must be {ORDER_DESC} or {ORDER_ASC}.",
        )
    return raw == ORDER_ASC


def _session(job: SimJob) -> dict[str, Any]:
    """A job in the shape of a `sessions[]` entry of the list API."""
    return {
        "id": job.id,
        "state": job.state,
        "appId": job.app_id,
        "name": job.name,
        "owner": job.owner,
        "proxyUser": job.owner,
        "kind": "spark",
        "log": list(job.log),
        "sc_type": job.sc_type,
        "cluster_name": job.queue,
        "queue": job.queue,
        "create_time": job.create_ms,
        "update_time": job.update_ms,
        "duration": job.duration_ms,
        "image": "",
        "req_body": job.req_body,
    }


def _apig(status: int, code: str, message: str, request_id: str) -> web.Response:
    """An API-gateway error answer (it carries the request id in the body too)."""
    return web.json_response(
        {"error_code": code, "error_msg": message, "request_id": request_id}, status=status
    )


def _reset(request: web.Request) -> None:
    """Drop the connection at once, unanswered: linger 0 makes the close a TCP reset (RST)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _fault_response(rule: FaultRule, request: web.Request, request_id: str) -> web.Response:
    """The answer an armed fault rule gives (a reset gives none: the response is never sent)."""
    if rule.kind == "reset":
        _reset(request)
        return web.Response(status=502, text="connection reset")
    if rule.kind == "rate_limit":
        response = _apig(
            429,
            "APIG.0308",
            "The throttling threshold has been reached: policy user over ratelimit,"
            "limit:60,time:1 minute",
            request_id,
        )
        seconds = rule.retry_after
        response.headers["Retry-After"] = (
            str(int(seconds)) if seconds == int(seconds) else str(seconds)
        )
        return response
    if rule.body is not None:
        return web.Response(status=rule.status, text=rule.body, content_type="application/json")
    body = {"error_code": "DLI.0999", "error_msg": f"Simulated failure (HTTP {rule.status})."}
    return web.Response(status=rule.status, text=json.dumps(body), content_type="application/json")


def make_app(
    world: World,
    *,
    project_id: str,
    auth: AuthMode = "none",
    credentials: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> web.Application:
    """The simulator as an aiohttp application, serving one project of `world`.

    `credentials` map access key -> secret key for auth "aksk", "domain/user" -> password for
    auth "token" (which also serves IAM's `POST /v3/auth/tokens`).
    """
    clock = clock or world.clock
    gate: AkSkGate | None = None
    tokens: TokenIssuer | None = None
    if auth == "aksk":
        if not credentials:
            raise ValueError("auth 'aksk' needs credentials (access key -> secret key)")
        gate = AkSkGate(dict(credentials), clock)
    elif auth == "token":
        tokens = TokenIssuer(credentials, project_id=project_id, faults=world.faults, clock=clock)
    elif auth != "none":
        raise ValueError(f"auth must be 'none', 'aksk' or 'token', got {auth!r}")
    sim = _Simulator(world, project_id, gate, clock, tokens)
    app = web.Application(middlewares=[sim.gateway])
    router = app.router
    if tokens is not None:
        router.add_post(IAM_TOKENS_PATH, tokens.handle, name=IAM_OPERATION)
    router.add_get(_BATCHES, sim.list_batches, name="list_batches", allow_head=False)
    router.add_get(_BATCH, sim.get_batch, name="get_batch", allow_head=False)
    router.add_delete(_BATCH, sim.cancel_batch, name="cancel_batch")
    router.add_get(_BATCH + "/state", sim.get_state, name="get_state", allow_head=False)
    router.add_get(_BATCH + "/log", sim.get_log, name="get_log", allow_head=False)
    return app


async def serve(
    world: World,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    project_id: str,
    auth: AuthMode = "none",
    credentials: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> web.AppRunner:
    """Start the simulator on host:port (0 = any free port); returns the started runner."""
    app = make_app(world, project_id=project_id, auth=auth, credentials=credentials, clock=clock)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
