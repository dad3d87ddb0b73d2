"""Configuration of the sinks: one model per sink `type`, and the union of them all.

Every sink shares `name`, `type` and an optional `rate_limit` (None: the vendor's published
limit with a safety margin, decided by the dispatcher). A new sink family adds its model
here and to `SinkSettings`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from monitor.config.base import ConfigModel
from monitor.config.fields import (
    HeaderName,
    PositiveDuration,
    Secret,
    SecretFile,
    SecretUrl,
    SinkName,
)


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


class WebhookSinkSettings(SinkBase):
    """A generic JSON webhook: one POST per notification."""

    type: Literal["webhook"] = Field(description="Sink kind.")
    url: SecretUrl = Field(description="http(s) URL to POST to; a secret (may hold a token).")
    url_file: SecretFile = Field(default=None, description="File holding the URL instead.")
    headers: dict[HeaderName, Secret] = Field(
        default_factory=dict, description="Extra request headers; values are secrets."
    )
    timeout: PositiveDuration | None = Field(
        default=None, description="Per-attempt timeout; default delivery.timeout."
    )


class ConsoleSinkSettings(SinkBase):
    """Writes each notification to standard output (for trials and the demo)."""

    type: Literal["console"] = Field(description="Sink kind.")


SinkSettings = Annotated[WebhookSinkSettings | ConsoleSinkSettings, Field(discriminator="type")]
