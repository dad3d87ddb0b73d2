"""Redaction of credentials from free text (job log lines, error messages, URLs).

Pure string functions, no state. `redact_text` masks `key=value` / `"key": "value"` pairs
whose key looks like a credential; `redact_url` keeps only scheme and host of a URL, since
chat webhook URLs carry their token in the path or query.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MASK = "***"

_SECRET_KEY = (
    r"(?:[\w.-]*(?:password|passwd|secret|token|credential|access[_-]?key|private[_-]?key)[\w.-]*"
    r"|ak|sk|pwd|authorization)"
)

# "password": "value"  /  'token': 'value'
_QUOTED = re.compile(rf"""(?i)(["']{_SECRET_KEY}["']\s*[:=]\s*)(["'])(.*?)(?<!\\)\2""")
# password=value, token: value  (the value ends at whitespace, & , ; } or a quote)
_PLAIN = re.compile(rf"""(?i)(?<![\w.-])({_SECRET_KEY})(\s*[:=]\s*)(?!\*\*\*)([^\s&,;"'}}]+)""")
# Authorization headers and bearer tokens
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")


def redact_text(text: str) -> str:
    """Mask every credential-looking value in `text`; the keys stay readable."""
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}{m.group(2)}", text)
    return _PLAIN.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def redact_url(url: str) -> str:
    """Reduce a URL to `scheme://host[:port]/…` so no path or query token can leak."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    if not parts.scheme or not parts.hostname:
        return MASK
    port = f":{parts.port}" if parts.port else ""
    tail = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{parts.hostname}{port}{tail}"


def scrub(text: str, secrets: frozenset[str] | set[str]) -> str:
    """Replace every occurrence of each known secret value (longest first) with the mask."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
