"""Parsing of the HTTP `Retry-After` header, shared by the DLI client and the sinks."""

from __future__ import annotations

import math
from datetime import datetime
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` value (seconds or HTTP date); None if unusable.

    A negative number of seconds is invalid (None); an HTTP date in the past means "now" (0).
    """
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            return None
        seconds = (moment - now).total_seconds()
    if not math.isfinite(seconds) or (seconds < 0 and not value[0].isalpha()):
        return None
    return max(0.0, seconds)
