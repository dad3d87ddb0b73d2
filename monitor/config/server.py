"""Configuration of `server:`: the HTTP server for /metrics, the probes and the read-only views.

`ServerSettings` is where it listens (`HOST:PORT`, IPv6 in brackets, checked at load time) and
whether it runs at all; `ServerAuthSettings` the credentials `/metrics` and the `/api` views
ask for (a bearer token, or basic auth; the probes stay open for the kubelet).

What does not live here: the server itself (`monitor.server`) and what it serves
(`monitor.server_wiring`), the rest of the file's models (`monitor.config.models`).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from monitor.config.base import ConfigModel as _Model
from monitor.config.fields import OptionalSecret, SecretFile, Text


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
        description="Ask for credentials on /metrics and the /api views (/healthz and /readyz"
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
