"""Request signatures of the chat products that sign: DingTalk and Feishu custom bots.

Both are HMAC-SHA256 over a timestamp and the bot's secret, but with the roles swapped:
DingTalk keys the HMAC with the secret and signs `"<ms>\\n<secret>"`; Feishu keys it with
`"<s>\\n<secret>"` and signs nothing. Signatures are computed per attempt from an injected
clock and never stored. Pure functions only; where the signature goes is each sink's business.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from urllib.parse import quote_plus


def _hmac_b64(key: str, message: str) -> str:
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def dingtalk_timestamp(now: datetime) -> int:
    """DingTalk's timestamp: Unix time in milliseconds."""
    return int(now.timestamp() * 1000)


def feishu_timestamp(now: datetime) -> int:
    """Feishu's timestamp: Unix time in seconds."""
    return int(now.timestamp())


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The raw Base64 DingTalk signature (HMAC key = secret, message = `ms\\nsecret`)."""
    return _hmac_b64(secret, f"{timestamp_ms}\n{secret}")


def dingtalk_query_suffix(secret: str, timestamp_ms: int) -> str:
    """`&timestamp=<ms>&sign=<signature URL-encoded exactly once>` to append to the URL."""
    return f"&timestamp={timestamp_ms}&sign={quote_plus(dingtalk_sign(secret, timestamp_ms))}"


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """The Base64 Feishu signature (HMAC key = `s\\nsecret`, empty message)."""
    return _hmac_b64(f"{timestamp_s}\n{secret}", "")


def feishu_body_fields(secret: str, timestamp_s: int) -> dict[str, str]:
    """The top-level `timestamp` and `sign` fields Feishu expects in a signed body."""
    return {"timestamp": str(timestamp_s), "sign": feishu_sign(secret, timestamp_s)}
