"""Configuration of the sinks: one model per sink `type`, and the union of them all.

Every sink shares `name`, `type` and an optional `rate_limit` (None: the vendor's published
limit with a safety margin, decided by the dispatcher). A new sink family adds its model
here and to `SinkSettings`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from monitor.config.base import ConfigModel
from monitor.config.fields import (
    HeaderName,
    HttpUrl,
    OptionalSecret,
    PositiveDuration,
    Secret,
    SecretFile,
    SecretUrl,
    SinkName,
    Text,
)
from monitor.config.templates import TemplateSettings
from monitor.config.tls import TlsSettings


class RateLimitSettings(ConfigModel):
    """A sink's own send budget; never more than this in any window of that length."""

    per_second: int | None = Field(
        default=None, ge=1, description="Messages allowed in any 1 s window (none: no limit)."
    )
    per_minute: int | None = Field(
        default=None, ge=1, description="Messages allowed in any 60 s window (none: no limit)."
    )


class SinkBase(ConfigModel):
    """What every sink has."""

    name: SinkName = Field(description="Unique sink name (used in metrics and logs).")
    rate_limit: RateLimitSettings | None = Field(
        default=None,
        description="Send budget; default: the vendor's published limit with a margin.",
    )
    tls: TlsSettings | None = Field(
        default=None, description="TLS checks of the sink's endpoint (HTTP sinks)."
    )


class WebhookSinkSettings(SinkBase):
    """A generic JSON webhook: one POST per notification."""

    type: Literal["webhook"] = Field(description="Sink kind.")
    url: SecretUrl = Field(description="http(s) URL to POST to; a secret (may hold a token).")
    url_file: SecretFile = Field(default=None, description="File holding the URL instead.")
    headers: dict[HeaderName, Secret] = Field(
        default_factory=dict, description="Extra request headers; values are secrets."
    )
    secret: OptionalSecret = Field(
        default=None,
        description="HMAC-SHA256 signing secret: adds X-Signature-Timestamp and X-Signature.",
    )
    secret_file: SecretFile = Field(default=None, description="File holding the secret instead.")
    timeout: PositiveDuration | None = Field(
        default=None, description="Per-attempt timeout; default delivery.timeout."
    )


class ConsoleSinkSettings(SinkBase):
    """Writes each notification to standard output (for trials and the demo)."""

    type: Literal["console"] = Field(description="Sink kind.")


class ChatSinkBase(SinkBase):
    """What every chat product sink has: a webhook URL that is a secret, and a timeout."""

    url: SecretUrl = Field(description="The bot's webhook URL; a secret (it holds the token).")
    url_file: SecretFile = Field(default=None, description="File holding the URL instead.")
    timeout: PositiveDuration | None = Field(
        default=None, description="Per-attempt timeout; default delivery.timeout."
    )
    templates: TemplateSettings | None = Field(
        default=None,
        description="Jinja2 (sandboxed) title/body overrides; default: the built-in message.",
    )


class SigningChatSinkBase(ChatSinkBase):
    """A chat sink whose product can sign each request with a shared secret."""

    secret: OptionalSecret = Field(
        default=None, description="Signing secret from the bot's security settings (optional)."
    )
    secret_file: SecretFile = Field(default=None, description="File holding the secret instead.")

    @model_validator(mode="after")
    def _secret_file_read(self) -> Self:
        if self.secret_file is not None and self.secret is None:
            raise ValueError("secret_file is set but no secret was read from it")
        return self


class FeishuSinkSettings(SigningChatSinkBase):
    """A Feishu/Lark custom bot: an interactive card, signed when `secret` is set."""

    type: Literal["feishu"] = Field(description="Sink kind.")


class DingTalkSinkSettings(SigningChatSinkBase):
    """A DingTalk custom robot: a markdown message, signed when `secret` is set."""

    type: Literal["dingtalk"] = Field(description="Sink kind.")
    keywords: list[Text] = Field(
        default_factory=list,
        max_length=10,
        description="The robot's custom keywords; one is added to a message lacking them all.",
    )


class WeComSinkSettings(ChatSinkBase):
    """A WeCom (企业微信) group robot: a markdown message of at most 4096 bytes."""

    type: Literal["wecom"] = Field(description="Sink kind.")


class SlackSinkSettings(ChatSinkBase):
    """A Slack incoming webhook: Block Kit header, section and footer."""

    type: Literal["slack"] = Field(description="Sink kind.")


class TeamsSinkSettings(ChatSinkBase):
    """A Microsoft Teams Workflows webhook: an Adaptive Card."""

    type: Literal["teams"] = Field(description="Sink kind.")


class DiscordSinkSettings(ChatSinkBase):
    """A Discord webhook: one embed, posted with `?wait=true`."""

    type: Literal["discord"] = Field(description="Sink kind.")


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_DERIVED_LABELS = frozenset({"alertname", "queue", "job_name", "job_id", "project_id"})


class BasicAuthSettings(ConfigModel):
    """HTTP basic auth credentials."""

    username: Text = Field(description="User name.")
    password: Secret = Field(description="Password.")
    password_file: SecretFile = Field(default=None, description="File holding the password.")


class AlertmanagerSinkSettings(SinkBase):
    """Prometheus Alertmanager (API v2): one active alert per failed job, resolved on success."""

    type: Literal["alertmanager"] = Field(description="Sink kind.")
    url: HttpUrl = Field(
        description="Alertmanager base URL, e.g. http://alertmanager:9093 (no credentials)."
    )
    basic_auth: BasicAuthSettings | None = Field(
        default=None, description="Basic auth, when Alertmanager or its proxy requires it."
    )
    bearer_token: OptionalSecret = Field(
        default=None, description="Bearer token sent as `Authorization` (not with basic_auth)."
    )
    bearer_token_file: SecretFile = Field(
        default=None, description="File holding the bearer token instead."
    )
    resolve_timeout: PositiveDuration = Field(
        default=300.0,
        description="Each post says the alert ends this long after now unless re-posted.",
    )
    repost_interval: PositiveDuration = Field(
        default=60.0, description="How often firing alerts are re-posted (< resolve_timeout)."
    )
    max_alert_age: PositiveDuration | None = Field(
        default=86400.0,
        description="Stop re-posting a failure alert this long after it fired (none: never).",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Static labels added to every alert (may set `severity`, default critical).",
    )
    timeout: PositiveDuration | None = Field(
        default=None, description="Per-attempt timeout; default delivery.timeout."
    )

    @field_validator("url")
    @classmethod
    def _no_credentials_in_url(cls, value: str) -> str:
        if urlsplit(value).username is not None:
            raise ValueError("must not hold credentials: use basic_auth or bearer_token")
        return value

    @field_validator("labels")
    @classmethod
    def _valid_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ValueError(f"label name {name[:40]!r} is not a valid Prometheus label name")
            if name in _DERIVED_LABELS:
                raise ValueError(f"label {name!r} is set by the monitor and cannot be overridden")
            if not text:
                raise ValueError(f"label {name!r} must not be empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.basic_auth is not None and self.bearer_token is not None:
            raise ValueError("give basic_auth or bearer_token, not both")
        if self.repost_interval >= self.resolve_timeout:
            raise ValueError("repost_interval must be shorter than resolve_timeout")
        return self


SinkSettings = Annotated[
    WebhookSinkSettings
    | ConsoleSinkSettings
    | FeishuSinkSettings
    | DingTalkSinkSettings
    | WeComSinkSettings
    | SlackSinkSettings
    | TeamsSinkSettings
    | DiscordSinkSettings
    | AlertmanagerSinkSettings,
    Field(discriminator="type"),
]
