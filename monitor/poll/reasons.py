"""Short, bounded names for why a poll failed: the labels of the poll error metrics."""

from __future__ import annotations

from monitor.dli.errors import (
    DliAuthError,
    DliBadResponse,
    DliError,
    DliNotFound,
    DliRateLimited,
    DliRequestError,
    DliServerError,
    DliTransportError,
)
from monitor.poll.listing import ListingIncomplete
from monitor.store import StoreWriteError

LASTING_FAILURES = frozenset({"auth", "rate_limited", "tls", "client_error", "state_write"})
"""Reasons a poll failed that trying again within seconds cannot mend (or would make worse)."""


def error_code(exc: DliError) -> str:
    """The API's error code, or what stands for it when the failure had none."""
    if exc.error_code:
        return exc.error_code
    return f"HTTP {exc.status}" if exc.status else "other"


def reason(exc: Exception) -> str:
    """A short, bounded label for the poll error metric."""
    if isinstance(exc, ListingIncomplete):
        return "inconsistent"
    if isinstance(exc, StoreWriteError):
        return "state_write"
    if isinstance(exc, DliAuthError):
        return "auth"
    if isinstance(exc, DliRateLimited):
        return "rate_limited"
    if isinstance(exc, DliServerError):
        return "server_error"
    if isinstance(exc, DliTransportError):
        code = exc.error_code or ""
        return code if code in ("timeout", "tls") else "connection"
    if isinstance(exc, DliBadResponse):
        return "bad_response"
    if isinstance(exc, DliRequestError | DliNotFound):
        return "client_error"
    return "other"
