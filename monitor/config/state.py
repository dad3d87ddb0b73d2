"""Configuration of `state:`: where the snapshot and the outbox are kept, SQLite or PostgreSQL.

`StateSettings` names the SQLite file, or a PostgreSQL `url` shared by a leader and its standbys
(with its password kept out of the URL, and the leader lease's TTL). `postgres_url` is the one
check of such a URL: it must be `postgresql://` and hold no password; the `dli-monitor state`
commands use it for their own `--url` too.

What does not live here: opening the store (`monitor.store.open_store`), the lease itself
(`monitor.leader`, `monitor.leadership`), the rest of the file's models (`monitor.config.models`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.config.base import ConfigModel as _Model
from monitor.config.fields import Duration, Kind, OptionalSecret, SecretFile, problem


class StateSettings(_Model):
    """Where the snapshot and the outbox are kept: a SQLite file, or PostgreSQL (`url`)."""

    path: Path = Field(
        default=Path("./dli-monitor.db"),
        description="SQLite file (relative to the working directory; `:memory:` for tests);"
        " used when `url` is not set.",
    )
    url: Annotated[str, Kind("URL")] | None = Field(
        default=None,
        description="PostgreSQL instead of the file, shared by a leader and its standbys:"
        " `postgresql://user@host:port/db`, without a password (see `password_file`).",
    )
    password: OptionalSecret = Field(
        default=None,
        description="PostgreSQL password; none = `PGPASSWORD` or `~/.pgpass`.",
    )
    password_file: SecretFile = Field(
        default=None, description="File holding the PostgreSQL password instead."
    )
    lease_ttl: Duration = Field(
        default=5.0,
        ge=0.3,
        le=300,
        description="With `url`: how long the leader's lease in PostgreSQL lasts unrenewed"
        " (renewed every third of it); a standby takes over within twice this after the"
        " leader dies, freezes or loses the database.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return postgres_url(value.strip())

    @model_validator(mode="wrap")
    @classmethod
    def _password_needs_url(
        cls, data: object, handler: ModelWrapValidatorHandler[StateSettings]
    ) -> StateSettings:
        result = handler(data)
        if result.password is not None and result.url is None:
            key = "password_file" if result.password_file is not None else "password"
            message = "a PostgreSQL password needs state.url (the SQLite file has none)"
            raise ValidationError.from_exception_data("state", [problem((key,), message)])
        return result

    @property
    def location(self) -> str | Path:
        """What `open_store` takes: the PostgreSQL URL when set, else the SQLite path."""
        return self.url if self.url is not None else self.path

    def password_value(self) -> str | None:
        """The PostgreSQL password in clear (only to hand to the driver), or None."""
        return None if self.password is None else self.password.get_secret_value()


def postgres_url(text: str, *, password_hint: str = "state.password_file") -> str:
    """`text` when it is a password-free `postgresql://` URL, else ValueError (value not shown);
    `password_hint` names where the password goes instead."""
    try:
        parts = urlsplit(text)
        _ = parts.port
    except ValueError:
        raise ValueError("not a valid URL: use postgresql://user@host:port/db") from None
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise ValueError("must be a postgresql:// (or postgres://) URL")
    query_keys = {key.lower() for key, _ in parse_qsl(parts.query)}
    if parts.password is not None or "password" in query_keys:
        raise ValueError(
            "must not hold a password: write it to a file (a mounted Secret) and name that file"
            f" in {password_hint}"
        )
    return text
