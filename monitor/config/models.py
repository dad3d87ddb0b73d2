"""The pydantic models of the configuration file: `Settings` (the whole file) and its small keys.

Every model is frozen and forbids unknown keys, and every field has a description: those
descriptions are the reference table in docs/configuration.md. Here: `Settings` with its
cross-field rules (unique sink names, the top-level `queues` only with a `dli:` mapping),
`PollSettings` and `DeliverySettings`. Each larger key has its own module (`dli`, `state`,
`server`, `sinks`, `routing`, `rules`, `metrics`); the models of `dli`, `state` and `server`
are re-exported here too.

What does not live here: reading the file, `${ENV}` and `*_file` resolution
(`monitor.config.load`), and showing or documenting settings (`monitor.config.docs`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from monitor.config.base import ConfigModel as _Model
from monitor.config.dli import (
    AkSkAuthSettings,
    AuthSettings,
    DliConfig,
    DliProjectSettings,
    DliSettings,
    NoAuthSettings,
    ProjectSettings,
    RetrySettings,
    TokenAuthSettings,
    projects_of,
)
from monitor.config.fields import (
    Duration,
    OptionalQueues,
    PositiveDuration,
    SinkName,
    problem,
    reraisable,
)
from monitor.config.metrics import MetricsSettings
from monitor.config.routing import RouteSettings, sink_name_problems
from monitor.config.rules import RulesSettings
from monitor.config.server import ServerAuthSettings, ServerSettings
from monitor.config.sinks import SinkSettings
from monitor.config.state import StateSettings, postgres_url

__all__ = [
    "AkSkAuthSettings",
    "AuthSettings",
    "DeliverySettings",
    "DliProjectSettings",
    "DliSettings",
    "NoAuthSettings",
    "PollSettings",
    "ProjectSettings",
    "RetrySettings",
    "ServerAuthSettings",
    "ServerSettings",
    "Settings",
    "StateSettings",
    "TokenAuthSettings",
    "postgres_url",
]


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

    dli: DliConfig = Field(
        description="The DLI project to poll (a mapping, with the top-level `queues`), or a list"
        " of projects, each with its own `name`, `queues`, credentials and request budget."
    )
    queues: OptionalQueues = Field(
        default=None,
        description='Queues to watch with a single `dli:` mapping: a list of names, or "*" for'
        " all jobs (required then; with a `dli:` list each entry has its own).",
    )
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
        problems += _queue_problems(raw)
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

    @property
    def projects(self) -> tuple[ProjectSettings, ...]:
        """Every DLI project to poll, from either form of `dli:` (see `monitor.config.dli`)."""
        return projects_of(self.dli, self.queues)

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
    return reraisable(error)


def _queue_problems(raw: dict[Any, Any]) -> list[InitErrorDetails]:
    """Top-level `queues` goes with a `dli:` mapping, and only with one."""
    listed = isinstance(raw.get("dli"), list)
    if listed and raw.get("queues") is not None:
        return [
            problem(
                ("queues",),
                "not used with a `dli:` list: give each project its own queues (dli[0].queues)",
            )
        ]
    if not listed and raw.get("queues") is None:
        return [problem(("queues",), "field required")]
    return []
