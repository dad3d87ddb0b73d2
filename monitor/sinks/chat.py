"""What every chat sink shares: one JSON POST, and classifying "errors inside a 200".

`post_json` sends a rendered body, reads a bounded excerpt of the answer and hands status,
body and headers to the product's pure `classify`; it turns network errors and timeouts into
retryable `SinkError`s and scrubs every known secret (URL, token, signing secret) from the
reason. `vendor_code_error` classifies the `{"errcode": n}` / `{"code": n}` bodies of the
Chinese IM bots. `fit_body` shrinks a message's text until the encoded body fits a byte limit.

What does not live here: product payloads (one module per product) and retries (the dispatcher).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

import aiohttp
from yarl import URL

from monitor.models import Clock, Notification, utc_now
from monitor.redact import redact_url
from monitor.sinks.base import SinkError, classify_status, safe_text
from monitor.sinks.content import MessageContext
from monitor.sinks.http import Classifier, post
from monitor.sinks.markup import Unit, size_of, truncate


def encode(payload: Mapping[str, Any]) -> bytes:
    """The JSON body as sent: compact UTF-8, non-ASCII kept (sizes are counted on this)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def parse_json(text: str) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def url_secrets(url: str, extra: Iterable[str | None] = ()) -> frozenset[str]:
    """Every part of a webhook URL that could be a credential, plus `extra` secrets."""
    found = {url, *(s for s in extra if s)}
    try:
        parsed = URL(url)
    except ValueError:
        return frozenset(found)
    found.update(p for p in parsed.path.split("/") if len(p) >= 8)
    found.update(v for v in parsed.query.values() if len(v) >= 4)
    return frozenset(found)


def vendor_code_error(
    status: int,
    body: str,
    headers: Mapping[str, str],
    now: datetime,
    *,
    code_key: str,
    message_key: str,
    throttled: Mapping[int, float | None],
    retryable: Collection[int] = (),
) -> SinkError | None:
    """Classify an IM bot answer whose 200 body carries `code_key` (0 = delivered).

    `throttled` maps the vendor's rate-limit codes to the wait it implies; codes in
    `retryable` are transient server trouble; every other non-zero code is permanent.
    """
    http_error = classify_status(status, body, headers.get("Retry-After"), now=now)
    if http_error is not None:
        return http_error
    data = parse_json(body)
    code = data.get(code_key) if data is not None else None
    if not isinstance(code, int) or isinstance(code, bool):
        excerpt = safe_text(body)
        return SinkError(
            f"HTTP {status} without a {code_key}: {excerpt}", retryable=True, kind="vendor_error"
        )
    if code == 0:
        return None
    assert data is not None
    reason = f"{code_key} {code}: {safe_text(str(data.get(message_key, '')))}".rstrip(": ")
    if code in throttled:
        return SinkError(
            f"throttled, {reason}", retryable=True, retry_after=throttled[code], kind="throttled"
        )
    return SinkError(reason, retryable=code in retryable, kind="vendor_error")


def fit_body(
    build: Callable[[str], dict[str, Any]], text: str, limit: int, unit: Unit = "bytes"
) -> dict[str, Any]:
    """`build(text)` with `text` truncated until the encoded body is at most `limit` long."""
    budget = size_of(text, unit)
    for _ in range(8):
        body = build(text if budget >= size_of(text, unit) else truncate(text, budget, unit))
        overflow = size_of(encode(body).decode(), unit) - limit
        if overflow <= 0:
            return body
        budget -= overflow + 16
    return build(truncate(text, max(budget, 0), unit))


async def post_json(
    session: aiohttp.ClientSession,
    url: str | URL,
    payload: Mapping[str, Any],
    *,
    classify: Classifier,
    clock: Clock,
    timeout_s: float,
    secrets: Collection[str] = (),
) -> None:
    """POST `payload` as JSON; return when `classify` says delivered, else raise `SinkError`."""
    await post(
        session,
        url,
        encode(payload),
        headers={"Content-Type": "application/json; charset=utf-8"},
        timeout_s=timeout_s,
        classify=classify,
        clock=clock,
        secrets=secrets,
    )


class ChatSink:
    """The shape of every chat sink: render at send time, POST once, classify the answer.

    Subclasses supply `payload` (their product's pure `render`) and `classify`; signing
    products override `target` and `signed` to add a signature computed for this attempt.
    """

    product = "chat"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        session: aiohttp.ClientSession,
        context: MessageContext,
        timeout_s: float = 10.0,
        clock: Clock = utc_now,
    ) -> None:
        self._name = name
        self._url = url
        self._session = session
        self._context = context
        self._timeout_s = timeout_s
        self._clock = clock
        self._secret: str | None = None
        self._secrets = url_secrets(url)

    def _use_secret(self, secret: str | None) -> None:
        """Sign with `secret` (signing products only); it joins the scrubbed secrets."""
        self._secret = secret or None
        self._secrets = url_secrets(self._url, [secret])

    @property
    def name(self) -> str:
        """The configured sink name."""
        return self._name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, url={redact_url(self._url)!r})"

    def payload(self, notification: Notification, context: MessageContext) -> dict[str, Any]:
        """The product's JSON body (pure)."""
        raise NotImplementedError

    def classify(
        self, status: int, body: str, headers: Mapping[str, str], now: datetime
    ) -> SinkError | None:
        """The product's answer classification (pure)."""
        return classify_status(status, body, headers.get("Retry-After"), now=now)

    def target(self, now: datetime) -> str | URL:
        """The URL for an attempt made at `now`."""
        return self._url

    def signed(self, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The body for an attempt made at `now`."""
        return payload

    def preview(self, notification: Notification) -> dict[str, Any]:
        """The JSON body a send would post now, before any per-attempt signature; no I/O."""
        return self.payload(notification, self._context.at(self._clock()))

    async def send(self, notification: Notification) -> None:
        """Render, sign for this attempt, POST; raise `SinkError` unless delivered."""
        now = self._clock()
        body = self.signed(self.payload(notification, self._context.at(now)), now)
        await post_json(
            self._session,
            self.target(now),
            body,
            classify=self.classify,
            clock=self._clock,
            timeout_s=self._timeout_s,
            secrets=self._secrets,
        )
