"""Durations in the config file: `30s`, `5m`, `1h30m`, `250ms` or a plain number of seconds.

`parse_duration` reads one into seconds and `format_duration` writes seconds back in the
shortest form that reads back the same. What does not live here: the pydantic field type that
uses them (`monitor.config.fields.Duration`).
"""

from __future__ import annotations

import math
import re

_PART = r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)"
_DURATION = re.compile(rf"(-?)((?:{_PART})+)")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds from `30s`, `5m`, `1h30m`, `250ms` or a plain number of seconds."""
    hint = "not a duration: use seconds or a value such as 30s, 5m, 1h30m, 250ms"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(hint)
    if not isinstance(value, str):
        seconds = float(value)
    elif _NUMBER.fullmatch(value.strip()):
        seconds = float(value.strip())
    elif match := _DURATION.fullmatch(value.strip()):
        parts = re.findall(_PART, match.group(2))
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
        seconds = -seconds if match.group(1) else seconds
    else:
        raise ValueError(hint)
    if not math.isfinite(seconds):
        raise ValueError(hint)
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest duration string that `parse_duration` reads back as `seconds`."""
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms" if millis < 1000 else f"{millis / 1000:.3f}".rstrip("0") + "s"
    hours, rest = divmod(millis // 1000, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"
