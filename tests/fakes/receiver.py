"""A webhook receiver for tests: an aiohttp app on a real socket that records every POST.

Usage::

    async with Receiver() as receiver:          # listens on 127.0.0.1, a free port
        sink = WebhookSink("hook", receiver.url, session=..., project_id="p")
        receiver.script([500, Reply(429, headers={"Retry-After": "30"}), 200])
        ...
        receiver.received        # every POST, in arrival order (`Received` records)
        receiver.payloads()      # their JSON bodies
        receiver.event_ids()     # their `event_id`s
        receiver.answered        # only the POSTs answered 2xx to a client still listening

Replies: by default every POST gets `200 {"ok": true}`. `script([...])` queues replies for
the next POSTs (ints are statuses, `Reply` adds headers/body); when the script runs out the
default comes back. `hold()` makes every POST hang until `release()` (or close), which is how a
test freezes a delivery in flight. POSTs are accepted on any path; `url` points at `/hook`.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict


@dataclass(frozen=True)
class Reply:
    """A scripted answer: status, extra headers, body text."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass(frozen=True)
class Received:
    """One POST as the receiver saw it, and the status it was (or will be) answered with."""

    path: str
    """Path and query string."""
    headers: CIMultiDict[str]
    body: bytes
    json: Any
    """The parsed JSON body, or None when the body was not JSON."""
    status: int


class Receiver:
    """A recording webhook endpoint with scripted replies; use as `async with Receiver()`."""

    def __init__(self, path: str = "/hook") -> None:
        self._path = path
        self._script: deque[Reply] = deque()
        self._released = asyncio.Event()
        self._released.set()
        self._arrived = asyncio.Event()
        self._server: TestServer | None = None
        self.received: list[Received] = []
        """Every POST, in arrival order (recorded on arrival, before any hold)."""
        self.answered: list[Received] = []
        """POSTs answered with a 2xx while the client was still connected."""

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start listening on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        """Let held requests finish and stop listening."""
        self.release()
        if self._server is not None:
            await self._server.close()
            self._server = None

    @property
    def url(self) -> str:
        """The webhook URL to configure (`http://127.0.0.1:<port>/hook`)."""
        if self._server is None:
            raise RuntimeError("receiver not started")
        return str(self._server.make_url(self._path))

    def script(self, replies: Iterable[int | Reply]) -> None:
        """Answer the next POSTs with these statuses/replies, then 200 again."""
        self._script.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def hold(self) -> None:
        """Make every POST hang (after being recorded) until `release()`."""
        self._released.clear()

    def release(self) -> None:
        """Let held POSTs, and all later ones, be answered."""
        self._released.set()

    def payloads(self) -> list[Any]:
        """The JSON bodies of every POST received."""
        return [r.json for r in self.received]

    def answered_payloads(self) -> list[Any]:
        """The JSON bodies of the POSTs answered 2xx (what a sender may count as delivered)."""
        return [r.json for r in self.answered]

    def event_ids(self) -> list[str]:
        """The `event_id` of every POST received (payload field, else `X-Event-Id`)."""
        ids = []
        for r in self.received:
            body = r.json if isinstance(r.json, dict) else {}
            ids.append(str(body.get("event_id") or r.headers.get("X-Event-Id", "")))
        return ids

    async def wait_for_requests(self, count: int, timeout: float = 5.0) -> None:
        """Wait until at least `count` POSTs arrived; AssertionError after `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.received) < count:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise AssertionError(
                f"receiver got {len(self.received)} requests, expected {count}"
            ) from None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        reply = self._script.popleft() if self._script else Reply(200, body='{"ok": true}')
        record = Received(
            path=request.path_qs,
            headers=CIMultiDict(request.headers),
            body=body,
            json=payload,
            status=reply.status,
        )
        self.received.append(record)
        self._arrived.set()
        await self._released.wait()
        transport = request.transport
        if 200 <= reply.status <= 299 and transport is not None and not transport.is_closing():
            self.answered.append(record)
        return web.Response(status=reply.status, headers=dict(reply.headers), text=reply.body)
