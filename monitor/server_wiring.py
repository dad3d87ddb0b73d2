"""Builds and starts the HTTP server over the daemon's running parts (called by `monitor.app` only).

`start_http_server` hands `monitor.server.make_app` what it serves: the metrics, the probes as
this replica's role sees them (`monitor.leadership_probes`), the `/api/status` view, the explain
view over the store, the status page, and the credentials the config asks for. Every view reads
the live parts again on each request: nothing is copied.

What does not live here: the routes and their handlers (`monitor.server`), the status page's
sources (`monitor.status_wiring`), whether and when the server runs and stops (`monitor.app`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiohttp import web

from monitor import __version__
from monitor.config import ServerAuthSettings, Settings
from monitor.explain import explain_view
from monitor.health import Health
from monitor.leadership import Leadership
from monitor.leadership_probes import RoleProbes
from monitor.metrics import Metrics
from monitor.models import Clock
from monitor.pipeline import Pipeline
from monitor.server import Credentials, StatusViews, make_app, start_server
from monitor.shard import Shard
from monitor.status_sinks import SinkActivity
from monitor.status_wiring import build_status_pages
from monitor.store import Store


async def start_http_server(
    settings: Settings,
    *,
    store: Store,
    metrics: Metrics,
    health: Health,
    leadership: Leadership,
    pipelines: Sequence[Pipeline],
    activity: SinkActivity,
    shard: Shard,
    clock: Clock,
) -> web.AppRunner:
    """Serve /metrics, the probes, the JSON views and the status page on `settings.server`'s
    address; the caller cleans the returned runner up."""
    probes = RoleProbes(leadership, health)
    pages = build_status_pages(
        settings,
        store=store,
        metrics=metrics,
        probes=probes,
        pipelines=pipelines,
        activity=activity,
        clock=clock,
    )
    app = make_app(
        metrics,
        probes,
        views=status_view(
            store=store, health=health, leadership=leadership, pipelines=pipelines, shard=shard
        ),
        credentials=credentials_from(settings.server.auth),
        role=leadership.role_view,
        explain=explain_view(store, settings.rules, clock),
        pages=pages,
    )
    return await start_server(app, settings.server.host, settings.server.port)


def status_view(
    *,
    store: Store,
    health: Health,
    leadership: Leadership,
    pipelines: Sequence[Pipeline],
    shard: Shard,
) -> StatusViews:
    """What `/api/status` shows: health, pending deliveries and jobs held per target."""

    async def view() -> Mapping[str, object]:
        targets: dict[str, int | None] = {}
        for pipeline in pipelines:
            for target in pipeline.targets:
                jobs = await pipeline.cycle.snapshot(target)
                targets[pipeline.project.key(target)] = len(jobs) if jobs is not None else None
        return {
            "version": __version__,
            "health": health.snapshot(),
            "outbox_pending": await store.pending_by_sink(),
            "targets": targets,
            "shard": {"index": shard.index, "total": shard.total},
            "leadership": leadership.role_view(),
        }

    return view


def credentials_from(auth: ServerAuthSettings | None) -> Credentials | None:
    """What the HTTP server asks for on its guarded paths (None: nothing)."""
    if auth is None:
        return None
    return Credentials(
        bearer_token=auth.bearer_token.get_secret_value() if auth.bearer_token else None,
        username=auth.username,
        password=auth.password.get_secret_value() if auth.password else None,
    )
