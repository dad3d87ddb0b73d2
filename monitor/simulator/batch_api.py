"""DLI's Spark batch API as the simulator serves it: the route handlers over a `World`.

`BatchApi` answers `GET /v2.0/{project_id}/batches` (paging, filters,
`order=CREATE_TIME_DESC|ASC`; the world's `total_mode`/`list_order` knobs shape the answer),
`GET .../batches/{id}`, `.../state`, `.../log` and `DELETE .../batches/{id}` with DLI's field
names, raising `ApiError` for DLI's error bodies. Routing, authentication, faults and the request
log are the gateway's (`gateway`); which path goes to which handler is `server`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from monitor.simulator.records import SimJob
from monitor.simulator.world import World

DEFAULT_PAGE = 100
MAX_PAGE = 1000
LOG_PAGE = 100
SPARK_VERSION = "3.3.1"
ORDER_DESC = "CREATE_TIME_DESC"
ORDER_ASC = "CREATE_TIME_ASC"


class ApiError(Exception):
    """An error answer a handler gives instead of its normal body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class BatchApi:
    """The batch routes' handlers over one world."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def list_batches(self, request: web.Request) -> web.Response:
        """`GET batches`: one page of matching jobs, newest first, with the total count.

        `order=CREATE_TIME_ASC` asks for oldest first; the world's `list_order` and
        `total_mode` knobs decide how faithfully the order is served and what `total` counts.
        """
        query = first_values(query_pairs(request))
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
        query = first_values(query_pairs(request))
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
            raise ApiError(400, "DLI.0007", message)
        self.world.set_state(job.id, "dead", log_line="YARN Diagnostics: Job killed by user")
        return web.json_response({"msg": "deleted"})

    def _job(self, request: web.Request) -> SimJob:
        batch_id = request.match_info["batch_id"]
        job = self.world.jobs.get(batch_id)
        if job is None:
            raise ApiError(400, "DLI.0002", f"The job {batch_id} does not exist.")
        return job


def query_pairs(request: web.Request) -> list[tuple[str, str]]:
    """The query as the gateway sees it for signing: decoded pairs, blanks kept, in order."""
    return parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)


def first_values(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
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
        raise ApiError(
            400, "DLI.0001", f"Parameter check error: {name} must be an integer."
        ) from None
    if value < 0 or (maximum is not None and value > maximum):
        limit = f"0..{maximum}" if maximum is not None else ">= 0"
        raise ApiError(400, "DLI.0001", f"Parameter check error: {name} must be {limit}.")
    return value


def _order_param(query: Mapping[str, str]) -> bool:
    """True when `order` asks for oldest first; DLI.0001 for a value other than CREATE_TIME_*."""
    raw = query.get("order") or ORDER_DESC
    if raw not in (ORDER_DESC, ORDER_ASC):
        raise ApiError(
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
