"""The pydantic models of the configuration file, from `Settings` (the whole file) down.

Every model is frozen and forbids unknown keys, and every field has a description: those
descriptions are the README's reference table. Cross-field rules (unique sink names, a valid
`listen` address) live here as validators.

What does not live here: reading the file, `${ENV}` and `*_file` resolution
(`monitor.config.load`), and showing or documenting settings (`monitor.config.docs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from monitor.config.base import ConfigModel as _Model
from monitor.config.fields import (
    Duration,
    HttpUrl,
    OptionalSecret,
    PositiveDuration,
    ProjectId,
    Queues,
    Secret,
    SecretFile,
    SinkName,
    Text,
    problem,
)
from monitor.config.metrics import MetricsSettings
from monitor.config.routing import RouteSettings, sink_name_problems
from monitor.config.rules import RulesSettings
from monitor.config.sinks import SinkSettings
from monitor.config.tls import TlsSettings


class AkSkAuthSettings(_Model):
    """AK/SK request signing (recommended by Huawei Cloud)."""

    type: Literal["aksk"] = Field(description="Sign every request with an access key pair.")
    access_key: Secret = Field(description="Access key id (AK).")
    access_key_file: SecretFile = Field(default=None, description="File holding the AK instead.")
    secret_key: Secret = Field(description="Secret access key (SK).")
    secret_key_file: SecretFile = Field(default=None, description="File holding the SK instead.")
    security_token: OptionalSecret = Field(
        default=None, description="Security token of temporary credentials; empty = none."
    )
    security_token_file: SecretFile = Field(
        default=None, description="File holding the security token instead."
    )


class TokenAuthSettings(_Model):
    """An IAM user token, fetched with a password and refreshed before it expires."""

    type: Literal["token"] = Field(description="Authenticate with an IAM token.")
    iam_endpoint: HttpUrl = Field(
        default="https://iam.myhuaweicloud.com", description="IAM endpoint that issues tokens."
    )
    tls: TlsSettings | None = Field(default=None, description="TLS checks of the IAM endpoint.")
    domain_name: Text = Field(description="Account (domain) name the IAM user belongs to.")
    username: Text = Field(description="IAM user name.")
    password: Secret = Field(description="IAM user password.")
    password_file: SecretFile = Field(
        default=None, description="File holding the password instead."
    )


class NoAuthSettings(_Model):
    """No authentication (the simulator, or a trusted proxy that signs for us)."""

    type: Literal["none"] = Field(description="Send requests unauthenticated.")


AuthSettings = Annotated[
    AkSkAuthSettings | TokenAuthSettings | NoAuthSettings, Field(discriminator="type")
]


class RetrySettings(_Model):
    """How a failed DLI request is retried within one cycle."""

    attempts: int = Field(default=4, ge=1, description="Tries per request, the first included.")
    backoff: list[Duration] = Field(
        default=[1.0, 2.0, 4.0], min_length=1, description="Waits between tries; the last repeats."
    )


class DliSettings(_Model):
    """Where DLI is and how to talk to it."""

    endpoint: HttpUrl = Field(
        description="DLI endpoint, e.g. https://dli.cn-north-4.myhuaweicloud.com (http: simulator)."
    )
    project_id: ProjectId = Field(description="Project id (1-64 letters/digits) in API paths.")
    auth: AuthSettings = Field(description="How requests are authenticated.")
    page_size: int = Field(
        default=100, ge=1, le=1000, description="Jobs per listing page (1-1000)."
    )
    request_timeout: PositiveDuration = Field(
        default=10.0, description="Timeout of one HTTP request."
    )
    max_requests_per_minute: int = Field(
        default=60, ge=0, description="Request budget against DLI; 0 = unlimited."
    )
    retry: RetrySettings = Field(default_factory=RetrySettings, description="Request retries.")
    tls: TlsSettings | None = Field(default=None, description="TLS checks of the DLI endpoint.")
    max_concurrency: int = Field(
        default=4,
        ge=1,
        description="DLI requests in flight at once (listings, pages and state calls).",
    )


class PollSettings(_Model):
    """When and how the queues are polled."""

    interval: Duration = Field(default=30.0, ge=1, description="Time between poll cycles (>= 1s).")
    failure_retry: Duration = Field(
        default=5.0,
        ge=0,
        description="After a cycle in which a target failed in a way that may pass (5xx, timeout,"
        " connection, bad body, shifting listing), the next cycle starts this soon instead of a"
        " whole interval later (never sooner than 1 s, never later than the interval; not after"
        " a 429, an auth or TLS failure, or while the request budget stretches the interval);"
        " 0 = off.",
    )
    baseline: Literal["silent", "notify"] = Field(
        default="silent",
        description="First poll of a target: record jobs silently, or also report failed ones.",
    )
    listing_attempts: int = Field(
        default=3, ge=1, description="Tries for a consistent listing of a target within one cycle."
    )
    mode: Literal["incremental", "full"] = Field(
        default="incremental",
        description="incremental: list active and new jobs, look up ended ones (cost follows"
        " activity); full: list every job of every queue each cycle (cost follows history).",
    )
    full_resync: Duration = Field(
        default=3600.0,
        description="Incremental mode: one reconciliation pass over the whole listing takes"
        " about this long, a few pages per cycle (0 = never).",
    )
    overlap: Duration = Field(
        default=10.0,
        description="Incremental mode: how far below the last high water (by create_time) the"
        " newest-first walk reads again, against jobs that become visible late.",
    )


class StateSettings(_Model):
    """Where the snapshot and the outbox are kept."""

    path: Path = Field(
        default=Path("./dli-monitor.db"),
        description="SQLite file (relative to the working directory; `:memory:` for tests).",
    )


class ServerAuthSettings(_Model):
    """Credentials `/metrics` and the read-only views ask for; the probes stay open."""

    bearer_token: OptionalSecret = Field(
        default=None, description="Token scrapers send as `Authorization: Bearer <token>`."
    )
    bearer_token_file: SecretFile = Field(
        default=None, description="File holding the bearer token instead."
    )
    username: Text | None = Field(default=None, description="Basic auth user name.")
    password: OptionalSecret = Field(default=None, description="Basic auth password.")
    password_file: SecretFile = Field(default=None, description="File holding the password.")

    @model_validator(mode="after")
    def _one_scheme(self) -> ServerAuthSettings:
        basic = self.username is not None or self.password is not None
        if basic and self.bearer_token is not None:
            raise ValueError("give a bearer_token or username and password, not both")
        if basic and (self.username is None or self.password is None):
            raise ValueError("basic auth needs both username and password")
        if not basic and self.bearer_token is None:
            raise ValueError("give a bearer_token, or username and password")
        return self


class ServerSettings(_Model):
    """The HTTP server for /metrics, /healthz and /readyz."""

    listen: str = Field(
        default="0.0.0.0:9108", description="HOST:PORT to listen on ([::]:9108 for IPv6)."
    )
    enabled: bool = Field(default=True, description="Serve metrics and probes at all.")
    auth: ServerAuthSettings | None = Field(
        default=None,
        description="Ask for credentials on /metrics and /api/status (/healthz and /readyz"
        " stay open for the kubelet); none = open.",
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        _split_listen(value)
        return value

    @property
    def host(self) -> str:
        """The address to bind, without IPv6 brackets."""
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port to bind; 0 picks a free one."""
        return _split_listen(self.listen)[1]


def _split_listen(value: str) -> tuple[str, int]:
    host, colon, port = value.strip().rpartition(":")
    if not colon or not host or not (port.isascii() and port.isdigit()):
        raise ValueError("must be HOST:PORT, e.g. 0.0.0.0:9108 or [::]:9108")
    if host.startswith("[") and host.endswith("]") and len(host) > 2:
        host = host[1:-1]
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError("an IPv6 address goes in brackets, e.g. [::]:9108")
    if int(port) > 65535:
        raise ValueError("port must be 0-65535")
    return host, int(port)


class DeliverySettings(_Model):
    """How notifications are delivered from the outbox to the sinks."""

    backoff: list[Duration] = Field(
        default=[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0],
        min_length=1,
        description="Waits between delivery attempts, doubling from 1s to 1m; the last repeats."
        " A vendor's named wait (Retry-After, a robot's block) is honoured when longer.",
    )
    jitter: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Each wait is lengthened by a random share up to this, so retries of many"
        " rows or replicas do not arrive in lockstep (0 = exact waits).",
    )
    max_age: PositiveDuration = Field(
        default=86400.0,
        description="An undelivered notification older than this is recorded failed.",
    )
    timeout: PositiveDuration = Field(default=10.0, description="Timeout of one delivery attempt.")
    batch_size: int = Field(default=100, ge=1, description="Outbox rows handled per drain.")


class Settings(_Model):
    """The whole configuration file."""

    dli: DliSettings = Field(description="The DLI service to poll.")
    queues: Queues = Field(description='Queues to watch: a list of names, or "*" for all jobs.')
    poll: PollSettings = Field(default_factory=PollSettings, description="Polling.")
    state: StateSettings = Field(default_factory=StateSettings, description="Persistence.")
    server: ServerSettings = Field(default_factory=ServerSettings, description="HTTP server.")
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings, description="Notification delivery."
    )
    shutdown_timeout: Duration = Field(
        default=20.0, description="How long shutdown waits for the running cycle and deliveries."
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description="Per-job metric series."
    )
    sinks: list[SinkSettings] = Field(
        default_factory=list, description="Where notifications go; empty = metrics only."
    )
    routes: list[RouteSettings] = Field(
        default_factory=list,
        description="Which events go to which sinks, first match wins; none = default_sinks.",
    )
    default_sinks: list[SinkName] | None = Field(
        default=None, description="Sinks for events no route matches; default: every sink."
    )
    rules: RulesSettings = Field(
        default_factory=RulesSettings,
        description="Lifecycle rules: stuck, overdue, failure streaks, recovered.",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _known_sink_names(
        cls, data: object, handler: ModelWrapValidatorHandler[Settings]
    ) -> Settings:
        raw = data if isinstance(data, dict) else {}
        problems = sink_name_problems(raw.get("routes"), raw.get("default_sinks"), raw.get("sinks"))
        try:
            result = handler(data)
        except ValidationError as exc:
            if not problems:
                raise
            details = [_detail(e) for e in exc.errors()]
            raise ValidationError.from_exception_data("Settings", details + problems) from None
        if problems:
            raise ValidationError.from_exception_data("Settings", problems)
        return result

    @field_validator("sinks", mode="wrap")
    @classmethod
    def _unique_names(cls, value: object, handler: ValidatorFunctionWrapHandler) -> object:
        problems: list[InitErrorDetails] = []
        first: dict[object, int] = {}
        for index, item in enumerate(value if isinstance(value, list) else []):
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and name in first:
                problems.append(
                    problem((index, "name"), f"duplicate sink name (also sinks[{first[name]}])")
                )
            elif isinstance(name, str):
                first[name] = index
        try:
            result = handler(value)
        except ValidationError as exc:
            details = [_detail(e) for e in exc.errors()]
            raise ValidationError.from_exception_data("sinks", details + problems) from None
        if problems:
            raise ValidationError.from_exception_data("sinks", problems)
        return result


def _detail(error: Any) -> InitErrorDetails:
    """A reported error turned back into one that can be raised again."""
    detail: InitErrorDetails = {"type": error["type"], "loc": error["loc"], "input": None}
    if "ctx" in error:
        detail["ctx"] = error["ctx"]
    if error["type"] == "config":
        detail["type"] = PydanticCustomError("config", error["msg"])
    return detail
