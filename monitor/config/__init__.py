"""The configuration file: its models, how it is loaded, validated, shown and documented.

The package re-exports its public API; the modules split it by concept:

- `durations`: `30s`/`5m`/`1h30m` text to seconds and back.
- `fields`: annotated value types (durations, secrets, URLs, names, queues) and their validators.
- `models`: the pydantic models, from `Settings` (the whole file) down; the larger keys have
  their own modules below.
- `dli`: `DliSettings` (one project) and `dli:` as a mapping or a list of projects, normalised
  into `ProjectSettings` (`Settings.projects`).
- `state`: `StateSettings`, the SQLite file or the PostgreSQL URL (and `postgres_url`).
- `server`: `ServerSettings` and `ServerAuthSettings`, the HTTP server and its credentials.
- `metrics`: `MetricsSettings`, the per-job metric series' TTL, cap and job-name filters.
- `rules`: `RulesSettings`, the lifecycle rules' thresholds (stuck, overdue).
- `load`: YAML reading, `${ENV}` references, `*_file` secrets, `load_settings`/`parse_settings`.
- `errors`: `ConfigError` and pydantic errors turned into `key.path: message` lines.
- `schema`: walking the models' types (used by `errors` and `docs`).
- `docs`: the effective config with secrets masked, the secrets themselves, the reference table.

`python -m monitor.config` prints the reference table (see `__main__`).

What does not live here: choosing the config path (the CLI), and turning settings into objects
(the composition root, `monitor.app`).
"""

from monitor.config.dli import DliProjectSettings, ProjectSettings, region_from_endpoint
from monitor.config.docs import (
    describe_projects,
    reference_table,
    render_effective,
    secret_values,
)
from monitor.config.durations import format_duration, parse_duration
from monitor.config.errors import ConfigError
from monitor.config.fields import ALL_QUEUES, Duration, Loc
from monitor.config.load import FILE_BACKED, load_settings, parse_settings
from monitor.config.metrics import MetricsSettings
from monitor.config.models import (
    AkSkAuthSettings,
    AuthSettings,
    DeliverySettings,
    DliSettings,
    NoAuthSettings,
    PollSettings,
    RetrySettings,
    ServerAuthSettings,
    ServerSettings,
    Settings,
    StateSettings,
    TokenAuthSettings,
)
from monitor.config.rules import OverdueLimit, RulesSettings
from monitor.config.sinks import (
    AlertmanagerSinkSettings,
    BasicAuthSettings,
    ConsoleSinkSettings,
    DingTalkSinkSettings,
    DiscordSinkSettings,
    FeishuSinkSettings,
    RateLimitSettings,
    SinkBase,
    SinkSettings,
    SlackSinkSettings,
    TeamsSinkSettings,
    WebhookSinkSettings,
    WeComSinkSettings,
)

__all__ = [
    "ALL_QUEUES",
    "FILE_BACKED",
    "AkSkAuthSettings",
    "AlertmanagerSinkSettings",
    "AuthSettings",
    "BasicAuthSettings",
    "ConfigError",
    "ConsoleSinkSettings",
    "DeliverySettings",
    "DingTalkSinkSettings",
    "DiscordSinkSettings",
    "DliProjectSettings",
    "DliSettings",
    "Duration",
    "FeishuSinkSettings",
    "Loc",
    "MetricsSettings",
    "NoAuthSettings",
    "OverdueLimit",
    "PollSettings",
    "ProjectSettings",
    "RateLimitSettings",
    "RetrySettings",
    "RulesSettings",
    "ServerAuthSettings",
    "ServerSettings",
    "Settings",
    "SinkBase",
    "SinkSettings",
    "SlackSinkSettings",
    "StateSettings",
    "TeamsSinkSettings",
    "TokenAuthSettings",
    "WeComSinkSettings",
    "WebhookSinkSettings",
    "describe_projects",
    "format_duration",
    "load_settings",
    "parse_duration",
    "parse_settings",
    "reference_table",
    "region_from_endpoint",
    "render_effective",
    "secret_values",
]
