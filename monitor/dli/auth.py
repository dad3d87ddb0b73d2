"""How a DLI request is authenticated: none, AK/SK signatures, or an IAM token.

Each authenticator turns the headers of one request into the complete header set to send and
says whether a 401 is worth one more try. AK/SK signing itself lives in `dli.signer` (pure);
this module only feeds it the request exactly as aiohttp will send it. The IAM token is
fetched with the shared session, cached, refreshed before it expires, and never logged.
Retrying DLI requests is not done here: that is `client._request`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl

import aiohttp
import structlog
import yarl

from monitor.dli.errors import DliAuthError, parse_error_body, transport_code
from monitor.dli.signer import sign
from monitor.models import Clock, utc_now
from monitor.redact import redact_url, scrub

log = structlog.get_logger(__name__)

TOKEN_OPERATION = "iam_token"
"""The operation name on errors raised while fetching an IAM token."""

REAUTH_INTERVAL = timedelta(seconds=60)
"""A 401 forces a new token at most this often, so a refused token cannot cause a loop."""

STALE_GRACE = timedelta(minutes=5)
"""When a proactive refresh fails, the cached token is still used if it lives this long."""


class Auth(Protocol):
    """Adds authentication to a request and decides whether a 401 deserves a retry."""

    async def headers(
        self, method: str, url: yarl.URL, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """Return the complete header set to send (input headers + auth headers)."""
        ...

    async def on_unauthorized(self) -> bool:
        """Called after a 401; True if retrying once makes sense (a fresh token was obtained)."""
        ...


class NoAuth:
    """No authentication, for the simulator and endpoints behind a trusted proxy."""

    async def headers(
        self, method: str, url: yarl.URL, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """Return the headers unchanged."""
        return dict(headers)

    async def on_unauthorized(self) -> bool:
        """Nothing to refresh: never retry."""
        return False

    def __repr__(self) -> str:
        return "NoAuth()"


def host_header(url: yarl.URL) -> str:
    """The Host header aiohttp sends for `url`: host, plus the port unless it is the default."""
    host = url.raw_host or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if url.port is not None and not url.is_default_port():
        host = f"{host}:{url.port}"
    return host


class AkSkAuth:
    """Signs every request with an access key / secret key pair (`SDK-HMAC-SHA256`)."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        security_token: str | None = None,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._security_token = security_token or None
        self._clock = clock

    async def headers(
        self, method: str, url: yarl.URL, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """Sign the request as it will be sent; returns headers incl. Host and Authorization."""
        signed = sign(
            method=method,
            host=host_header(url),
            path=url.raw_path,
            query=parse_qsl(url.raw_query_string, keep_blank_values=True),
            headers=headers,
            body=body,
            access_key=self._access_key,
            secret_key=self._secret_key,
            moment=self._clock(),
            security_token=self._security_token,
        )
        return signed.headers

    async def on_unauthorized(self) -> bool:
        """Never retry a refused signature: five failures lock the access key for 5 minutes."""
        return False

    def __repr__(self) -> str:
        shown = self._access_key[:4] + "…" if self._access_key else ""
        return f"AkSkAuth(access_key={shown!r}, secret_key='***')"


@dataclass(frozen=True, slots=True)
class _Token:
    """A cached IAM token and when to replace it."""

    value: str
    expires_at: datetime
    refresh_at: datetime


class IamTokenAuth:
    """Adds `X-Auth-Token` from a password-scoped IAM token, cached and refreshed early."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        iam_endpoint: str,
        domain_name: str,
        username: str,
        password: str,
        project_id: str,
        clock: Clock = utc_now,
        refresh_margin: timedelta = timedelta(hours=1),
        timeout_s: float = 10.0,
    ) -> None:
        self._session = session
        self._url = yarl.URL(iam_endpoint.rstrip("/") + "/v3/auth/tokens").with_query(
            nocatalog="true"
        )
        self._domain_name = domain_name
        self._username = username
        self._password = password
        self._project_id = project_id
        self._clock = clock
        self._margin = refresh_margin
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self._last_forced: datetime | None = None

    async def headers(
        self, method: str, url: yarl.URL, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """Return the headers plus `X-Auth-Token`, fetching a token first when needed."""
        return {**headers, "X-Auth-Token": await self._current()}

    async def on_unauthorized(self) -> bool:
        """Drop the token and fetch a new one; False when that was already done < 60 s ago.

        A wall clock that stepped back since (negative time elapsed) does not hold it back."""
        async with self._lock:
            now = self._clock()
            since = None if self._last_forced is None else now - self._last_forced
            if since is not None and timedelta(0) <= since < REAUTH_INTERVAL:
                return False
            self._last_forced = now
            self._token = None
            self._token = await self._fetch()
            return True

    async def _current(self) -> str:
        """The cached token while it is fresh; otherwise one shared refresh."""
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        async with self._lock:
            token = self._token
            now = self._clock()
            if token is not None and now < token.refresh_at:
                return token.value
            try:
                self._token = await self._fetch()
            except DliAuthError as exc:
                if token is None or token.expires_at - now < STALE_GRACE:
                    raise
                log.warning(
                    "IAM token refresh failed; using the cached token until it expires",
                    error=str(exc),
                    expires_at=token.expires_at.isoformat(),
                )
                return token.value
            return self._token.value

    def _request_body(self) -> bytes:
        """The password-method, project-scoped token request."""
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self._username,
                            "password": self._password,
                            "domain": {"name": self._domain_name},
                        }
                    },
                },
                "scope": {"project": {"id": self._project_id}},
            }
        }
        return json.dumps(body).encode()

    def _error(self, **fields: Any) -> DliAuthError:
        """A token error whose message cannot contain the password."""
        msg = scrub(str(fields.pop("error_msg", "")), {self._password})
        return DliAuthError(TOKEN_OPERATION, error_msg=msg, **fields)

    async def _fetch(self) -> _Token:
        """POST the token request; raises DliAuthError on any failure."""
        try:
            async with self._session.post(
                self._url,
                data=self._request_body(),
                headers={"Content-Type": "application/json;charset=utf8"},
                timeout=self._timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                body = await resp.read()
                token_value = resp.headers.get("X-Subject-Token", "")
                request_id = resp.headers.get("X-Request-Id", "")
        except TimeoutError:
            raise self._error(error_code="timeout", error_msg="IAM did not answer") from None
        except aiohttp.ClientError as exc:
            code = transport_code(exc)
            raise self._error(error_code=code, error_msg=type(exc).__name__) from None
        if status not in (200, 201):
            code, msg, body_request_id = parse_error_body(body)
            raise self._error(
                status=status,
                error_code=code,
                error_msg=msg,
                request_id=request_id or body_request_id,
            )
        if not token_value:
            raise self._error(status=status, error_msg="no X-Subject-Token header in the answer")
        expires_at = _expires_at(body)
        if expires_at is None:
            raise self._error(status=status, error_msg="no valid token.expires_at in the answer")
        now = self._clock()
        margin = min(self._margin, max(expires_at - now, timedelta(0)) / 2)
        log.info(
            "IAM token obtained",
            iam=redact_url(str(self._url)),
            expires_at=expires_at.isoformat(),
        )
        return _Token(token_value, expires_at, expires_at - margin)

    def __repr__(self) -> str:
        return (
            f"IamTokenAuth(iam={redact_url(str(self._url))!r}, "
            f"username={self._username!r}, password='***')"
        )


def _expires_at(body: bytes) -> datetime | None:
    """`token.expires_at` of an IAM token answer as an aware datetime, None when unusable."""
    try:
        data = json.loads(body)
        raw = data["token"]["expires_at"]
        moment = datetime.fromisoformat(raw)
    except (ValueError, KeyError, TypeError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
