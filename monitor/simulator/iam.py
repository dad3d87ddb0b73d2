"""The simulated API gateway's authentication: AK/SK signature checks and IAM tokens.

`AkSkGate` checks `SDK-HMAC-SHA256` signatures the way the gateway does, clock-skew rule and
lock-out counters included (401 APIG.0301/0303). `TokenIssuer` plays IAM and the gateway's
token check: it serves `POST /v3/auth/tokens` (password method, project scope: the body
`IamTokenAuth` sends), checks domain, user and password, and answers 201 with the token in
`X-Subject-Token` and `token.expires_at`/`issued_at` in the body, or 401 as IAM does; `check`
refuses a DLI request whose `X-Auth-Token` is missing, unknown, expired or revoked with the
gateway's error (APIG.0301, or APIG.0307 "The token must be updated."). Revocation is a fault
(`Faults.revoke_tokens`): every token issued before it fails at once, as if each had expired
early. Routing, faults and job state are the server's and the world's business, not this one's.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from monitor.dli.signer import parse_authorization, parse_sdk_date, sdk_date, verify
from monitor.models import Clock
from monitor.simulator.faults import Faults

MAX_SKEW = timedelta(minutes=15)
LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=5)

IAM_TOKENS_PATH = "/v3/auth/tokens"
IAM_OPERATION = "iam_token"
"""The route name (and recorded operation) of the token endpoint."""
TOKEN_LIFETIME = timedelta(hours=24)

Problem = tuple[str, str]
"""An APIG error code and message."""


@dataclass
class AkSkGate:
    """AK/SK checks as the API gateway does them, lock-out counters included."""

    credentials: Mapping[str, str]
    clock: Clock
    failures: dict[str, int] = field(default_factory=dict)
    locked_until: dict[str, datetime] = field(default_factory=dict)

    def check(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        request: web.Request,
        body: bytes,
    ) -> Problem | None:
        """None when the request may pass; else the APIG error code and message."""
        now = self.clock()
        parsed = parse_authorization(request.headers.get("Authorization", ""))
        access_key = parsed.access_key if parsed and parsed.access_key in self.credentials else ""
        until = self.locked_until.get(access_key)
        if until is not None:
            if now < until:
                return "APIG.0301", "AK access failed to reach the limit,forbidden"
            del self.locked_until[access_key]
        problem = self._problem(method, path, query, request, body, now)
        if problem is None:
            self.failures.pop(access_key, None)
        elif access_key:
            self.failures[access_key] = self.failures.get(access_key, 0) + 1
            if self.failures[access_key] >= LOCK_AFTER:
                del self.failures[access_key]
                self.locked_until[access_key] = now + LOCK_FOR
        return problem

    def _problem(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        request: web.Request,
        body: bytes,
        now: datetime,
    ) -> Problem | None:
        reason = verify(
            method=method,
            path=path,
            query=query,
            headers=request.headers,
            body=body,
            secret_for=self.credentials,
        )
        if reason is not None:
            return "APIG.0301", f"Incorrect IAM authentication information: {reason}"
        raw_date = request.headers.get("X-Sdk-Date", "")
        try:
            signed_at = parse_sdk_date(raw_date)
        except ValueError:
            return "APIG.0301", "Incorrect IAM authentication information: invalid x-sdk-date"
        if abs(now - signed_at) > MAX_SKEW:
            return (
                "APIG.0303",
                f"signature expired, signature time:{raw_date}, server time:{sdk_date(now)}",
            )
        return None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What the gateway knows of a token it issued."""

    domain: str
    user: str
    issued_at: datetime
    expires_at: datetime
    epoch: int
    """`Faults.token_epoch` at issue time; a later revocation invalidates the token."""


def parse_users(credentials: Mapping[str, str] | None) -> dict[tuple[str, str], str]:
    """`{"domain/user": password}` as {(domain, user): password}; ValueError when unusable."""
    users: dict[tuple[str, str], str] = {}
    for key, password in (credentials or {}).items():
        domain, slash, user = key.partition("/")
        if not (slash and domain and user and password):
            raise ValueError(f"auth 'token' needs 'domain/user' -> password entries, got {key!r}")
        users[(domain, user)] = password
    if not users:
        raise ValueError("auth 'token' needs credentials ('domain/user' -> password)")
    return users


def iam_time(moment: datetime) -> str:
    """A moment as IAM writes it: `2026-03-01T12:00:00.000000Z`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class TokenIssuer:
    """IAM's token endpoint and the gateway's `X-Auth-Token` check over the issued tokens."""

    def __init__(
        self,
        credentials: Mapping[str, str] | None,
        *,
        project_id: str,
        faults: Faults,
        clock: Clock,
        lifetime: timedelta = TOKEN_LIFETIME,
    ) -> None:
        self._users = parse_users(credentials)
        self._project_id = project_id
        self._faults = faults
        self._clock = clock
        self._lifetime = lifetime
        self.tokens: dict[str, IssuedToken] = {}
        self.refused_logins = 0

    async def handle(self, request: web.Request) -> web.Response:
        """`POST /v3/auth/tokens`: 201 + `X-Subject-Token` for good credentials, else 400/401."""
        try:
            body = json.loads(await request.read())
            identity = _password_identity(body)
        except (ValueError, KeyError, TypeError, AttributeError):
            return _iam_error(400, "Bad Request", "The request body is invalid.")
        domain, user, password, project = identity
        if self._users.get((domain, user)) != password:
            self.refused_logins += 1
            return _iam_error(401, "Unauthorized", "The username or password is wrong.")
        if project != self._project_id:
            return _iam_error(401, "Unauthorized", "The user has no access to the project.")
        value, token = self.issue(domain, user)
        answer = {
            "token": {
                "expires_at": iam_time(token.expires_at),
                "issued_at": iam_time(token.issued_at),
                "methods": ["password"],
                "project": {"id": project, "name": project, "domain": {"name": domain}},
                "user": {"name": user, "domain": {"name": domain}},
                "roles": [{"name": "dli_admin"}],
            }
        }
        headers = {"X-Subject-Token": value, "X-Request-Id": uuid.uuid4().hex}
        return web.json_response(answer, status=201, headers=headers)

    def issue(self, domain: str, user: str) -> tuple[str, IssuedToken]:
        """A new token for a known user, valid for the lifetime from now."""
        now = self._clock()
        token = IssuedToken(domain, user, now, now + self._lifetime, self._faults.token_epoch)
        value = "MII" + secrets.token_urlsafe(48)
        self.tokens[value] = token
        return value, token

    def check(self, header: str | None) -> Problem | None:
        """None when the `X-Auth-Token` value may pass; else the APIG error code and message."""
        if not header:
            return "APIG.0301", "Incorrect IAM authentication information: x-auth-token not found"
        token = self.tokens.get(header)
        if token is None:
            return "APIG.0301", "Incorrect IAM authentication information: decrypt token fail"
        if self._faults.token_revoked(token.epoch):
            return "APIG.0307", "The token must be updated."
        if self._clock() >= token.expires_at:
            return (
                "APIG.0301",
                "Incorrect IAM authentication information: token expires, "
                f"expires_at: {iam_time(token.expires_at)}",
            )
        return None


def _password_identity(body: Any) -> tuple[str, str, str, str]:
    """(domain, user, password, project id) of a password-method, project-scoped request."""
    auth = body["auth"]
    if "password" not in auth["identity"]["methods"]:
        raise ValueError("not the password method")
    user = auth["identity"]["password"]["user"]
    project = auth["scope"]["project"]
    fields = (user["domain"]["name"], user["name"], user["password"], project.get("id"))
    if not all(isinstance(value, str) for value in fields):
        raise ValueError("a field is not a string")
    return fields


def _iam_error(status: int, title: str, message: str) -> web.Response:
    """An IAM (Keystone-style) error answer."""
    body = {"error": {"code": status, "title": title, "message": message}}
    return web.json_response(body, status=status, headers={"X-Request-Id": uuid.uuid4().hex})
