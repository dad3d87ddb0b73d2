"""The API gateway in front of the simulated DLI API: one aiohttp middleware over a `World`.

`Gateway.middleware` does what Huawei Cloud's API gateway does before a request reaches DLI:
routing errors (404 APIG.0101), the authentication of `iam` (AK/SK signatures, 401
APIG.0301/0303; or IAM tokens, 401 APIG.0301/0307, with `POST /v3/auth/tokens` passed through
untouched), the armed faults (a `reset` rule drops the connection unanswered), `X-Request-Id`
on every answer, and the request log. The DLI handlers themselves are in `batch_api`; the
routing table and the runner are in `server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiohttp import web

from monitor.simulator.batch_api import ApiError, first_values, query_pairs
from monitor.simulator.faults import FaultRule
from monitor.simulator.iam import IAM_OPERATION, AkSkGate, TokenIssuer
from monitor.simulator.records import RecordedRequest
from monitor.simulator.world import World

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Gateway:
    """The gateway middleware over one world and one project."""

    def __init__(
        self,
        world: World,
        project_id: str,
        gate: AkSkGate | None,
        tokens: TokenIssuer | None = None,
    ) -> None:
        self.world = world
        self.project_id = project_id
        self.gate = gate
        self.tokens = tokens

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Route check, authentication, faults, X-Request-Id and recording for every request."""
        request_id = uuid.uuid4().hex
        path = request.raw_path.split("?", 1)[0]
        pairs = query_pairs(request)
        query = first_values(pairs)
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
        offset, queue = self._fault_context(request, operation, first_values(pairs))
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
        except ApiError as exc:
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
