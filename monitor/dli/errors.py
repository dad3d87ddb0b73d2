"""The DLI error hierarchy and the one place that turns an HTTP failure into one of them.

`DliError` carries what the API said (status, error code, message, request id), with the
message redacted and truncated so an exception text never carries a credential. The
subclasses say what the caller can do about it; `error_from_response` picks the subclass the
way the SDK parses error bodies. Retrying is not decided here: that is `client._request`.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from monitor.redact import redact_text

MAX_MESSAGE = 300
"""Longest error message kept from a response body, in characters."""

AUTH_CODES = frozenset({"APIG.0301", "APIG.0303"})
"""Gateway codes that mean the credentials or the signature were refused."""

NOT_FOUND_CODES = frozenset({"DLI.0002", "DLI.0023"})
"""DLI codes that mean the object (job, queue) does not exist."""

ROUTE_NOT_FOUND_CODE = "APIG.0101"
"""A 404 from the gateway for an unknown path or host: a wiring problem, not a missing job."""

_CODE_MESSAGE_KEYS = (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message"))


class DliError(Exception):
    """A DLI request failed; the fields say how, the text is safe to log."""

    def __init__(
        self,
        operation: str,
        *,
        status: int | None = None,
        error_code: str = "",
        error_msg: str = "",
        request_id: str = "",
    ) -> None:
        self.operation = operation
        self.status = status
        self.error_code = error_code
        self.error_msg = _clean(error_msg)
        self.request_id = request_id
        super().__init__(self._text())

    def _text(self) -> str:
        parts = [f"{self.operation} failed:"]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.error_code:
            parts.append(self.error_code)
        if self.error_msg:
            parts.append(repr(self.error_msg))
        if self.request_id:
            parts.append(f"(request_id={self.request_id})")
        return " ".join(parts)

    def __str__(self) -> str:
        return self._text()


class DliAuthError(DliError):
    """Credentials, signature or token were refused (401/403, APIG.0301/0303), or no token."""


class DliNotFound(DliError):
    """The object does not exist (404, or 400 with DLI.0002/DLI.0023)."""


class DliRateLimited(DliError):
    """Still throttled (429) after every retry."""


class DliServerError(DliError):
    """The server kept failing (5xx) through every retry."""


class DliTransportError(DliError):
    """Timeouts or connection errors through every retry; no usable HTTP answer."""


class DliBadResponse(DliError):
    """A 2xx answer whose body is not JSON or not the documented shape."""


class DliRequestError(DliError):
    """Any other refusal (other 4xx, unexpected status): retrying will not help."""


def _clean(text: str) -> str:
    """Redact credentials, then truncate to `MAX_MESSAGE` characters."""
    text = redact_text(text)
    if len(text) > MAX_MESSAGE:
        return text[: MAX_MESSAGE - 1] + "…"
    return text


def _as_text(value: object) -> str:
    """A field value as text; '' for None."""
    return "" if value is None else str(value)


def _find_code_message(body: Mapping[str, Any], depth: int = 0) -> tuple[str, str] | None:
    """The SDK's search order: top-level key pairs first, then nested dicts."""
    for code_key, msg_key in _CODE_MESSAGE_KEYS:
        if code_key in body and msg_key in body:
            return _as_text(body[code_key]), _as_text(body[msg_key])
    if depth < 3:
        for value in body.values():
            if isinstance(value, Mapping):
                found = _find_code_message(value, depth + 1)
                if found is not None:
                    return found
    return None


def parse_error_body(body: bytes) -> tuple[str, str, str]:
    """Return `(error_code, error_msg, request_id)` from an error body, '' where absent."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        return "", text.strip(), ""
    if not isinstance(data, Mapping):
        return "", text.strip(), ""
    request_id = _as_text(data.get("request_id"))
    found = _find_code_message(data)
    if found is not None:
        return found[0], found[1], request_id
    if "msg" in data:  # Livy-style `{"msg": "..."}`
        return "", _as_text(data["msg"]), request_id
    return "", "", request_id


def error_class_for(status: int, error_code: str) -> type[DliError]:
    """The exception class for a final HTTP failure, before any retry consideration."""
    if status in (401, 403) or error_code in AUTH_CODES:
        return DliAuthError
    if error_code == ROUTE_NOT_FOUND_CODE:
        return DliRequestError
    if status == 404 or (status == 400 and error_code in NOT_FOUND_CODES):
        return DliNotFound
    if status == 429:
        return DliRateLimited
    if status == 408:
        return DliTransportError
    if status >= 500:
        return DliServerError
    return DliRequestError


TRANSPORT_CODES: tuple[str, ...] = (
    "timeout",
    "tls",
    "connection_refused",
    "connection_reset",
    "connection_error",
)
"""What stands for the HTTP status of an attempt that got no answer: the request metric's
`code` and a transport error's `error_code`."""


def transport_code(exc: BaseException) -> str:
    """The word for why an attempt got no HTTP answer (one of `TRANSPORT_CODES`)."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "tls"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection_refused"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "connection_reset"
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return "connection_reset"
    return "connection_error"


def error_from_response(
    operation: str, status: int, body: bytes, headers: Mapping[str, str]
) -> DliError:
    """Build the right `DliError` subclass for a non-2xx response."""
    error_code, error_msg, body_request_id = parse_error_body(body)
    header_id = next((v for k, v in headers.items() if k.lower() == "x-request-id"), "")
    request_id = header_id or body_request_id
    cls = error_class_for(status, error_code)
    return cls(
        operation,
        status=status,
        error_code=error_code,
        error_msg=error_msg,
        request_id=request_id,
    )
