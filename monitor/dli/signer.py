"""Huawei Cloud AK/SK request signing (`SDK-HMAC-SHA256`), pure functions only.

Reproduces the official SDK byte for byte (see `tests/data/signing-vectors.json`): canonical
URI always ends in `/`, the query is sorted and RFC 3986-encoded, every header without `_` in
its name is signed, and the secret key is the HMAC key as is. The simulator uses `verify` to
check signatures exactly as the API gateway does. No I/O, no clock: the date is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def sdk_date(moment: datetime) -> str:
    """Format a moment as the `X-Sdk-Date` header value (UTC, basic ISO 8601)."""
    return moment.astimezone(UTC).strftime(DATE_FORMAT)


def parse_sdk_date(value: str) -> datetime:
    """Parse an `X-Sdk-Date` header value; raises ValueError when malformed."""
    return datetime.strptime(value, DATE_FORMAT).replace(tzinfo=UTC)


def encode(value: str) -> str:
    """RFC 3986 encoding as the SDK does it: only `A-Za-z0-9-_.~` stay literal."""
    return quote(value, safe="~")


def canonical_uri(path: str) -> str:
    """Each segment unquoted then re-encoded, always ending in `/`."""
    segments = [encode(unquote(seg)) for seg in path.split("/")]
    uri = "/".join(segments)
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Sorted `name=value` pairs, both encoded, joined by `&`; empty when there are none."""
    return "&".join(f"{encode(k)}={encode(v)}" for k, v in sorted(params))


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """Lower-cased names of the headers to sign: all but `Authorization` and names with `_`."""
    names = {
        name.lower() for name in headers if "_" not in name and name.lower() != "authorization"
    }
    return sorted(names)


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[str, str]:
    """Build the canonical request; returns it with the `;`-joined signed header names."""
    lowered = {name.lower(): value for name, value in headers.items()}
    names = signed_header_names(headers)
    header_block = "".join(f"{name}:{lowered[name].strip()}\n" for name in names)
    signed = ";".join(names)
    text = "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            header_block,
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    return text, signed


def string_to_sign(canonical: str, date: str) -> str:
    """The string the HMAC is computed over."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{date}\n{digest}"


def signature(secret_key: str, to_sign: str) -> str:
    """Hex HMAC-SHA256 of the string to sign, keyed by the secret key itself."""
    return hmac.new(secret_key.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What signing produced: the headers to send and, for tests, the intermediate texts."""

    headers: dict[str, str]
    canonical_request: str
    string_to_sign: str
    authorization: str


def sign(
    *,
    method: str,
    host: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    moment: datetime,
    security_token: str | None = None,
) -> SignedRequest:
    """Sign a request; returns the full header set to send (with Host and X-Sdk-Date).

    `headers` are the extra headers to send and sign (Content-Type, User-Agent, X-Project-Id).
    The security token of temporary credentials is added before signing so it is signed.
    """
    all_headers = dict(headers)
    if security_token:
        all_headers["X-Security-Token"] = security_token
    date = sdk_date(moment)
    all_headers[DATE_HEADER] = date
    all_headers["Host"] = host
    query = list(query)
    canonical, signed = canonical_request(method, path, query, all_headers, body)
    to_sign = string_to_sign(canonical, date)
    sig = signature(secret_key, to_sign)
    authorization = f"{ALGORITHM} Access={access_key}, SignedHeaders={signed}, Signature={sig}"
    all_headers["Authorization"] = authorization
    return SignedRequest(all_headers, canonical, to_sign, authorization)


@dataclass(frozen=True, slots=True)
class ParsedAuthorization:
    """The three parts of an `SDK-HMAC-SHA256` Authorization header."""

    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> ParsedAuthorization | None:
    """Split an Authorization header; None when it is not a well-formed SDK-HMAC-SHA256 one."""
    prefix = ALGORITHM + " "
    if not value.startswith(prefix):
        return None
    parts: dict[str, str] = {}
    for item in value[len(prefix) :].split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            return None
        parts[key] = val
    try:
        names = tuple(n for n in parts["SignedHeaders"].split(";") if n)
        return ParsedAuthorization(parts["Access"], names, parts["Signature"])
    except KeyError:
        return None


def verify(
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Mapping[str, str],
) -> str | None:
    """Check a received request's signature; returns None when valid, else the reason.

    `headers` are the received headers (case-insensitive lookup is done here); only the
    headers named in SignedHeaders enter the canonical request, as the gateway does.
    `secret_for` maps access keys to secret keys.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    parsed = parse_authorization(lowered.get("authorization", ""))
    if parsed is None:
        return "authorization header missing or malformed"
    secret = secret_for.get(parsed.access_key)
    if secret is None:
        return "Get secretKey failed, ak not exist"
    if "host" not in parsed.signed_headers or "x-sdk-date" not in parsed.signed_headers:
        return "host and x-sdk-date must be signed"
    missing = [n for n in parsed.signed_headers if n not in lowered]
    if missing:
        return f"signed header missing: {missing[0]}"
    date = lowered["x-sdk-date"]
    signed_subset = {name: lowered[name] for name in parsed.signed_headers}
    canonical, _ = canonical_request(method, path, query, signed_subset, body)
    expected = signature(secret, string_to_sign(canonical, date))
    if not hmac.compare_digest(expected, parsed.signature):
        return "verify aksk signature fail"
    return None
