"""Fake chat vendors for tests: one aiohttp app on a real socket speaking like six products.

Usage::

    async with FakeVendors(clock=clock) as vendors:
        url = vendors.url("dingtalk")              # the robot URL, token included
        vendors.dingtalk_secret = "SEC…"           # demand a valid signature
        vendors.script("dingtalk", [Answer(200, DINGTALK_THROTTLED)])
        ...
        vendors.received["dingtalk"]               # every request, in arrival order

Each product checks what the real one checks (token, signature and its timestamp window,
keywords, size limits, `wait=true`) and answers with the EXACT success and error bodies from
`shared/reference/sinks.md`, including the Chinese bots' HTTP-200-with-errcode failures and
the throttling answers. Scripted answers (`script`) replace the next checks' verdicts.
Signatures are verified with an implementation independent of `monitor.sinks.signing`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote_plus

from aiohttp import web
from aiohttp.test_utils import TestServer

PRODUCTS = ("dingtalk", "wecom", "feishu", "slack", "teams", "discord")

DINGTALK_TOKEN = "dt0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
FEISHU_TOKEN = "2f5e0a1b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
SLACK_SECRET = "XXXXXXXXXXXXXXXXXXXXXXXX"
TEAMS_SIG = "Zm9vYmFyYmF6cXV4c2lnbmF0dXJlMDEyMzQ1Njc4OQ"
DISCORD_TOKEN = "k1Lm2Nn3Oo4Pp5Qq6Rr7Ss8Tt9Uu0Vv1Ww2Xx3Yy4Zz5Aa6Bb7Cc8Dd9Ee0Ff1Gg2Hh3"

# --- exact bodies (sinks.md) -----------------------------------------------------------------
DINGTALK_OK = '{"errcode":0,"errmsg":"ok"}'
DINGTALK_THROTTLED = '{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}'
DINGTALK_KEYWORDS = '{"errcode":310000,"errmsg":"keywords not in content"}'
DINGTALK_SIGN = '{"errcode":310000,"errmsg":"sign not match"}'
DINGTALK_TIMESTAMP = '{"errcode":310000,"errmsg":"invalid timestamp"}'
DINGTALK_SIGN_NEW = (
    '{"errcode":310000,"errmsg":"description:机器人发送签名不匹配;'
    'solution:请确认签名和生成签名的时间戳必须都放在调用的网址中"}'
)
DINGTALK_TOO_LARGE = '{"errcode":460101,"errmsg":"body 大小不合法 … 请保持大小在 20000bytes 以内"}'
WECOM_OK = '{"errcode":0,"errmsg":"ok"}'
WECOM_FREQ = (
    '{"errcode":45009,"errmsg":"api freq out of limit, hint: [1732870000_41_a1b2c3], '
    'more info at https://open.work.weixin.qq.com/devtool/query?e=45009"}'
)
WECOM_TOO_LONG = (
    '{"errcode":40058,"errmsg":"markdown.content exceed max length 4096. '
    'invalid Request Parameter, hint: [1732870000_41_d4e5f6]"}'
)
WECOM_INVALID_KEY = '{"errcode":93000,"errmsg":"invalid webhook url, hint: [1732870000_41_0]"}'
FEISHU_OK = '{"StatusCode":0,"StatusMessage":"success","code":0,"data":{},"msg":"success"}'
FEISHU_SIGN = (
    '{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}'
)
FEISHU_IP = '{"code":19022,"msg":"Ip Not Allowed"}'
FEISHU_KEYWORDS = '{"code":19024,"msg":"Key Words Not Found"}'
FEISHU_THROTTLED = '{"code":11232,"msg":"frequency limited"}'
FEISHU_BAD_REQUEST = '{"code":9499,"msg":"Bad Request"}'
FEISHU_BAD_TOKEN = '{"code":19001,"msg":"param invalid: incoming webhook access token invalid"}'
FEISHU_PARAMS = '{"code":19002,"msg":"params error, msg_type need"}'
DISCORD_RATE_LIMITED = (
    '{"message": "You are being rate limited.", "retry_after": 1.5, "global": false}'
)
DISCORD_UNKNOWN_WEBHOOK = '{"message": "Unknown Webhook", "code": 10015}'
DISCORD_INVALID_FORM = (
    '{"code": 50035, "errors": {"embeds": {"0": {"description": {"_errors": '
    '[{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 4096 or fewer in length."}]}}}},'
    ' "message": "Invalid Form Body"}'
)


@dataclass(frozen=True)
class Answer:
    """A scripted vendor answer: status, body text, extra headers."""

    status: int = 200
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """One request as a vendor saw it, and how it was answered."""

    path_qs: str
    body: bytes
    json: Any
    answer: Answer


def _b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


class FakeVendors:
    """DingTalk, WeCom, Feishu, Slack, Teams and Discord on one local port."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._server: TestServer | None = None
        self._scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self.received: dict[str, list[Request]] = defaultdict(list)
        self.dingtalk_secret: str | None = None
        self.dingtalk_keywords: tuple[str, ...] = ()
        self.feishu_secret: str | None = None

    async def __aenter__(self) -> FakeVendors:
        app = web.Application()
        app.router.add_post("/robot/send", self._dingtalk)
        app.router.add_post("/cgi-bin/webhook/send", self._wecom)
        app.router.add_post("/open-apis/bot/v2/hook/{token}", self._feishu)
        app.router.add_post("/services/T0001/B0001/{secret}", self._slack)
        app.router.add_post("/workflows/{flow}/triggers/manual/paths/invoke", self._teams)
        app.router.add_post("/api/webhooks/{hook}/{token}", self._discord)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    def url(self, product: str) -> str:
        """The webhook URL of `product`, credential included, as a user would configure it."""
        assert self._server is not None, "vendors not started"
        base = str(self._server.make_url("")).rstrip("/")
        return {
            "dingtalk": f"{base}/robot/send?access_token={DINGTALK_TOKEN}",
            "wecom": f"{base}/cgi-bin/webhook/send?key={WECOM_KEY}",
            "feishu": f"{base}/open-apis/bot/v2/hook/{FEISHU_TOKEN}",
            "slack": f"{base}/services/T0001/B0001/{SLACK_SECRET}",
            "teams": (
                f"{base}/workflows/4f1c0d2e/triggers/manual/paths/invoke"
                f"?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={TEAMS_SIG}"
            ),
            "discord": f"{base}/api/webhooks/1234567890/{DISCORD_TOKEN}",
        }[product]

    def script(self, product: str, answers: Iterable[Answer]) -> None:
        """Answer the next requests to `product` with these, whatever they contain."""
        self._scripts[product].extend(answers)

    async def _answer(
        self, product: str, request: web.Request, verdict: Callable[[bytes, Any], Answer]
    ) -> web.Response:
        raw = await request.read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        scripted = self._scripts[product]
        answer = scripted.popleft() if scripted else verdict(raw, payload)
        self.received[product].append(Request(request.path_qs, raw, payload, answer))
        content_type = "application/json" if answer.body.startswith("{") else "text/plain"
        return web.Response(
            status=answer.status,
            body=answer.body.encode(),
            headers={"Content-Type": f"{content_type}; charset=utf-8", **answer.headers},
        )

    def _fresh(self, stamp: str, scale: int) -> bool:
        try:
            sent = int(stamp) / scale
        except ValueError:
            return False
        return abs(self._clock().timestamp() - sent) <= 3600

    # --- DingTalk ------------------------------------------------------------------------------
    async def _dingtalk(self, request: web.Request) -> web.Response:
        raw_query = request.rel_url.raw_query_string
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        raw_sign = dict(part.split("=", 1) for part in raw_query.split("&") if "=" in part).get(
            "sign"
        )

        def verdict(raw: bytes, body: Any) -> Answer:
            if query.get("access_token") != DINGTALK_TOKEN:
                return Answer(200, '{"errcode":300001,"errmsg":"token is not exist"}')
            if len(raw) >= 20_000:
                return Answer(200, DINGTALK_TOO_LARGE)
            if self.dingtalk_secret is not None:
                stamp = query.get("timestamp", "")
                if not self._fresh(stamp, 1000):
                    return Answer(200, DINGTALK_TIMESTAMP)
                secret = self.dingtalk_secret
                expected = _b64_hmac(secret.encode(), f"{stamp}\n{secret}".encode())
                if raw_sign != quote_plus(expected):  # encoded exactly once
                    return Answer(200, DINGTALK_SIGN)
            if not isinstance(body, dict) or body.get("msgtype") != "markdown":
                return Answer(200, '{"errcode":40035,"errmsg":"缺少参数 json"}')
            markdown = body.get("markdown") or {}
            text = f"{markdown.get('title', '')}{markdown.get('text', '')}"
            if self.dingtalk_keywords and not any(k in text for k in self.dingtalk_keywords):
                return Answer(200, DINGTALK_KEYWORDS)
            return Answer(200, DINGTALK_OK)

        return await self._answer("dingtalk", request, verdict)

    # --- WeCom ---------------------------------------------------------------------------------
    async def _wecom(self, request: web.Request) -> web.Response:
        key = request.query.get("key")

        def verdict(raw: bytes, body: Any) -> Answer:
            if key != WECOM_KEY:
                return Answer(200, WECOM_INVALID_KEY)
            content = (body or {}).get("markdown", {}).get("content", "")
            if len(content.encode()) > 4096:
                return Answer(200, WECOM_TOO_LONG)
            return Answer(200, WECOM_OK)

        return await self._answer("wecom", request, verdict)

    # --- Feishu --------------------------------------------------------------------------------
    async def _feishu(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]

        def verdict(raw: bytes, body: Any) -> Answer:
            if token != FEISHU_TOKEN:
                return Answer(200, FEISHU_BAD_TOKEN)
            if len(raw) > 20 * 1024 or not isinstance(body, dict):
                return Answer(200, FEISHU_BAD_REQUEST)
            if self.feishu_secret is not None:
                stamp = str(body.get("timestamp", ""))
                key = f"{stamp}\n{self.feishu_secret}".encode()
                if not self._fresh(stamp, 1) or body.get("sign") != _b64_hmac(key, b""):
                    return Answer(200, FEISHU_SIGN)
            if "msg_type" not in body:
                return Answer(200, FEISHU_PARAMS)
            return Answer(200, FEISHU_OK)

        return await self._answer("feishu", request, verdict)

    # --- Slack ---------------------------------------------------------------------------------
    async def _slack(self, request: web.Request) -> web.Response:
        secret = request.match_info["secret"]

        def verdict(raw: bytes, body: Any) -> Answer:
            if secret != SLACK_SECRET:
                return Answer(404, "no_service")
            if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
                return Answer(400, "missing_text_or_fallback_or_attachments")
            for block in body.get("blocks") or []:
                text = (block.get("text") or {}).get("text", "")
                if block.get("type") == "section" and len(text) > 3000:
                    return Answer(400, "invalid_blocks")
            return Answer(200, "ok")

        return await self._answer("slack", request, verdict)

    # --- Teams ---------------------------------------------------------------------------------
    async def _teams(self, request: web.Request) -> web.Response:
        sig = request.query.get("sig")

        def verdict(raw: bytes, body: Any) -> Answer:
            if sig != TEAMS_SIG:
                return Answer(
                    401,
                    '{"error":{"code":"DirectApiAuthorizationRequired","message":'
                    '"The request must be authenticated only by Shared Access scheme."}}',
                )
            if len(raw) > 28 * 1024:
                return Answer(413, '{"error":{"code":"RequestEntityTooLarge"}}')
            return Answer(202, "")

        return await self._answer("teams", request, verdict)

    # --- Discord -------------------------------------------------------------------------------
    async def _discord(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        wait = request.query.get("wait") == "true"

        def verdict(raw: bytes, body: Any) -> Answer:
            if token != DISCORD_TOKEN:
                return Answer(404, DISCORD_UNKNOWN_WEBHOOK)
            embeds = (body or {}).get("embeds") or []
            too_long = any(len(e.get("description", "")) > 4096 for e in embeds)
            total = sum(
                len(e.get("title", ""))
                + len(e.get("description", ""))
                + len((e.get("footer") or {}).get("text", ""))
                for e in embeds
            )
            if too_long or total > 6000:
                return Answer(400, DISCORD_INVALID_FORM)
            if not wait:
                return Answer(204, "")
            return Answer(200, json.dumps({"id": "1", "channel_id": "2", "embeds": embeds}))

        return await self._answer("discord", request, verdict)
