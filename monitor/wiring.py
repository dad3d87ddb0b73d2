"""Building the parts the daemon talks through from settings: the HTTP sessions (one per TLS
policy), the DLI authenticator, the sinks (the only place that maps a sink's config `type` to
its class) and their rate budgets.

Used by the composition root (`monitor.app`) and by `render`/`test-sink` (`monitor.preview`), so
that a previewed message is built by exactly the code the daemon sends with.
"""

from __future__ import annotations

import ssl
from dataclasses import replace
from types import TracebackType

import aiohttp
import structlog

from monitor.config import (
    AkSkAuthSettings,
    AlertmanagerSinkSettings,
    ConsoleSinkSettings,
    DingTalkSinkSettings,
    DliSettings,
    FeishuSinkSettings,
    Settings,
    TokenAuthSettings,
    WebhookSinkSettings,
)
from monitor.config.sinks import ChatSinkBase
from monitor.config.tls import TlsSettings
from monitor.dli.auth import AkSkAuth, Auth, IamTokenAuth, NoAuth
from monitor.models import Clock, utc_now
from monitor.ratelimit import RateBudget, budget_for
from monitor.sinks import (
    DEFAULT_RATE_LIMITS,
    AlertmanagerSink,
    ConsoleSink,
    DingTalkSink,
    DiscordSink,
    FeishuSink,
    SlackSink,
    TeamsSink,
    WebhookSink,
    WeComSink,
)
from monitor.sinks.base import Sink
from monitor.sinks.content import MessageContext, console_link
from monitor.sinks.templates import MessageTemplates

log = structlog.get_logger(__name__)


class SessionPool:
    """The aiohttp sessions of the process: the default one, and one per other TLS policy.

    A custom CA bundle or `verify: false` applies to one endpoint's session only, so nothing
    else trusts that CA or skips checks. Turning verification off is warned about once, naming
    the setting. Closing the pool closes every session it made.
    """

    def __init__(self, *, connections: int = 20, timeout_s: float = 30.0) -> None:
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._sessions: dict[tuple[str, bool], aiohttp.ClientSession] = {}

    async def __aenter__(self) -> SessionPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def get(self, tls: TlsSettings | None, *, setting: str) -> aiohttp.ClientSession:
        """The session for an endpoint with these TLS settings (`setting` names them)."""
        ca_file = str(tls.ca_file) if tls is not None and tls.ca_file is not None else ""
        verify = tls.verify if tls is not None else True
        key = (ca_file, verify)
        if key not in self._sessions:
            if not verify:
                log.warning("TLS verification is off for an endpoint", setting=setting)
            checks: ssl.SSLContext | bool = True
            if ca_file:
                checks = ssl.create_default_context(cafile=ca_file)
            elif not verify:
                checks = False
            self._sessions[key] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, ssl=checks),
                timeout=self._timeout,
            )
        elif not verify:
            log.warning("TLS verification is off for an endpoint", setting=setting)
        return self._sessions[key]

    async def close(self) -> None:
        """Close every session."""
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


def build_auth(
    dli: Settings | DliSettings, sessions: SessionPool, clock: Clock, *, setting: str = "dli"
) -> Auth:
    """The request authenticator one project's settings ask for (each has its own token cache).

    `dli` is the project's settings (given whole settings: the first project's); `setting`
    names where they are configured, for the TLS warning (`dli` or `dli[1]`)."""
    if isinstance(dli, Settings):
        dli = dli.projects[0].dli
    auth = dli.auth
    if isinstance(auth, AkSkAuthSettings):
        token = auth.security_token.get_secret_value() if auth.security_token else None
        return AkSkAuth(
            auth.access_key.get_secret_value(),
            auth.secret_key.get_secret_value(),
            token or None,
            clock=clock,
        )
    if isinstance(auth, TokenAuthSettings):
        return IamTokenAuth(
            sessions.get(auth.tls, setting=f"{setting}.auth.tls"),
            iam_endpoint=str(auth.iam_endpoint),
            domain_name=auth.domain_name,
            username=auth.username,
            password=auth.password.get_secret_value(),
            project_id=dli.project_id,
            clock=clock,
        )
    return NoAuth()


def build_sinks(
    settings: Settings,
    sessions: SessionPool,
    clock: Clock = utc_now,
    *,
    instance: str | None = None,
) -> dict[str, Sink]:
    """One sink per configured entry, keyed by its name; `instance` (this replica's lease
    holder id, with shared state) is the webhook sinks' `X-DLI-Monitor-Instance`."""
    projects = settings.projects
    context = replace(
        MessageContext.from_endpoint(projects[0].dli.endpoint),
        console_urls={p.name: console_link(p.dli.endpoint, p.region) for p in projects},
    )
    project = {p.name: p.dli.project_id for p in projects}
    sinks: dict[str, Sink] = {}
    for index, entry in enumerate(settings.sinks):
        session = sessions.get(entry.tls, setting=f"sinks[{index}].tls")
        timeout = getattr(entry, "timeout", None) or settings.delivery.timeout
        if isinstance(entry, WebhookSinkSettings):
            sinks[entry.name] = WebhookSink(
                entry.name,
                entry.url.get_secret_value(),
                session=session,
                project_id=project,
                timeout_s=timeout,
                headers={k: v.get_secret_value() for k, v in entry.headers.items()},
                secret=entry.secret.get_secret_value() if entry.secret else None,
                clock=clock,
                instance=instance,
            )
        elif isinstance(entry, ConsoleSinkSettings):
            sinks[entry.name] = ConsoleSink(entry.name)
        elif isinstance(entry, AlertmanagerSinkSettings):
            sinks[entry.name] = _alertmanager(entry, settings, session, timeout, clock)
        elif isinstance(entry, FeishuSinkSettings | DingTalkSinkSettings):
            secret = entry.secret.get_secret_value() if entry.secret else None
            extra = {"keywords": entry.keywords} if isinstance(entry, DingTalkSinkSettings) else {}
            chat_class = FeishuSink if isinstance(entry, FeishuSinkSettings) else DingTalkSink
            sinks[entry.name] = chat_class(
                entry.name,
                entry.url.get_secret_value(),
                session=session,
                context=_chat_context(entry, context),
                timeout_s=timeout,
                clock=clock,
                secret=secret,
                **extra,
            )
        else:
            sinks[entry.name] = _PLAIN_CHAT[entry.type](
                entry.name,
                entry.url.get_secret_value(),
                session=session,
                context=_chat_context(entry, context),
                timeout_s=timeout,
                clock=clock,
            )
    return sinks


def _chat_context(entry: ChatSinkBase, context: MessageContext) -> MessageContext:
    """The shared message context with this chat sink's own templates, if it has any."""
    templates = entry.templates
    return context.with_templates(MessageTemplates(templates.as_mapping()) if templates else None)


_PLAIN_CHAT: dict[str, type[WeComSink | SlackSink | TeamsSink | DiscordSink]] = {
    "wecom": WeComSink,
    "slack": SlackSink,
    "teams": TeamsSink,
    "discord": DiscordSink,
}


def _alertmanager(
    entry: AlertmanagerSinkSettings,
    settings: Settings,
    session: aiohttp.ClientSession,
    timeout: float,
    clock: Clock,
) -> AlertmanagerSink:
    basic = None
    if entry.basic_auth is not None:
        basic = (entry.basic_auth.username, entry.basic_auth.password.get_secret_value())
    links = {p.name: console_link(p.dli.endpoint, p.region) for p in settings.projects}
    return AlertmanagerSink(
        entry.name,
        str(entry.url),
        session=session,
        project_id={p.name: p.dli.project_id for p in settings.projects},
        resolve_timeout_s=entry.resolve_timeout,
        max_alert_age_s=entry.max_alert_age,
        timeout_s=timeout,
        labels=dict(entry.labels),
        basic_auth=basic,
        bearer_token=entry.bearer_token.get_secret_value() if entry.bearer_token else None,
        console_url=lambda event: links.get(event.project),
        clock=clock,
    )


def build_budgets(settings: Settings, clock: Clock) -> dict[str, RateBudget]:
    """Each sink's send budget: its `rate_limit`, else its vendor's default with a margin."""
    budgets: dict[str, RateBudget] = {}
    for entry in settings.sinks:
        per_second, per_minute = DEFAULT_RATE_LIMITS.get(entry.type, (None, None))
        if entry.rate_limit is not None:
            per_second, per_minute = entry.rate_limit.per_second, entry.rate_limit.per_minute
        budgets[entry.name] = budget_for(per_second, per_minute, clock)
    return budgets
