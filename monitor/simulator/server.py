"""The simulator's HTTP face: DLI's Spark batch API over a `World`, as an aiohttp application.

`make_app` wires the routes (`GET /v2.0/{project_id}/batches`, `.../batches/{id}`, `.../state`,
`.../log`, `DELETE .../batches/{id}` and, with IAM tokens, `POST /v3/auth/tokens`) behind the
gateway middleware; `serve` runs it on a socket. The handlers are in `batch_api`, the routing
errors, authentication, faults, `X-Request-Id` and request log in `gateway`. Job state itself
lives in `world`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from aiohttp import web

from monitor.models import Clock
from monitor.simulator.batch_api import BatchApi
from monitor.simulator.gateway import Gateway
from monitor.simulator.iam import IAM_OPERATION, IAM_TOKENS_PATH, AkSkGate, TokenIssuer
from monitor.simulator.world import World

AuthMode = Literal["none", "aksk", "token"]

_BATCHES = "/v2.0/{project_id}/batches"
_BATCH = _BATCHES + "/{batch_id}"


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
    gateway = Gateway(world, project_id, gate, tokens)
    api = BatchApi(world)
    app = web.Application(middlewares=[gateway.middleware])
    router = app.router
    if tokens is not None:
        router.add_post(IAM_TOKENS_PATH, tokens.handle, name=IAM_OPERATION)
    router.add_get(_BATCHES, api.list_batches, name="list_batches", allow_head=False)
    router.add_get(_BATCH, api.get_batch, name="get_batch", allow_head=False)
    router.add_delete(_BATCH, api.cancel_batch, name="cancel_batch")
    router.add_get(_BATCH + "/state", api.get_state, name="get_state", allow_head=False)
    router.add_get(_BATCH + "/log", api.get_log, name="get_log", allow_head=False)
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
