"""Contract tests run against every chat sink, over real sockets to the fake vendors.

Each sink must: deliver to its (fake) product, classify every documented success and error
body right (200-with-errcode failures, throttling with the vendor's wait), keep its URL token
and signing secret out of every error, stay within its product's size limit with a "+N more"
marker, and render deterministically. Product specifics (signing, keywords, `wait=true`,
Adaptive Cards) follow the contract tests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.models import Event, EventKind, Job, JobState, Notification
from monitor.sinks import (
    DEFAULT_RATE_LIMITS,
    DingTalkSink,
    DiscordSink,
    FeishuSink,
    MessageContext,
    SinkError,
    SlackSink,
    TeamsSink,
    WeComSink,
    dingtalk,
    discord,
    feishu,
    slack,
    teams,
    wecom,
)
from monitor.sinks.chat import ChatSink
from tests.fakes.vendors import (
    DINGTALK_KEYWORDS,
    DINGTALK_OK,
    DINGTALK_SIGN,
    DINGTALK_SIGN_NEW,
    DINGTALK_THROTTLED,
    DINGTALK_TIMESTAMP,
    DINGTALK_TOKEN,
    DINGTALK_TOO_LARGE,
    DISCORD_INVALID_FORM,
    DISCORD_RATE_LIMITED,
    DISCORD_TOKEN,
    DISCORD_UNKNOWN_WEBHOOK,
    FEISHU_BAD_REQUEST,
    FEISHU_BAD_TOKEN,
    FEISHU_IP,
    FEISHU_KEYWORDS,
    FEISHU_OK,
    FEISHU_PARAMS,
    FEISHU_SIGN,
    FEISHU_THROTTLED,
    FEISHU_TOKEN,
    PRODUCTS,
    SLACK_SECRET,
    TEAMS_SIG,
    WECOM_FREQ,
    WECOM_INVALID_KEY,
    WECOM_KEY,
    WECOM_OK,
    WECOM_TOO_LONG,
    Answer,
    FakeVendors,
)

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent.parent / "data" / "sink-vectors.json").read_text()
)
CONTEXT = MessageContext.from_endpoint("https://dli.cn-north-4.myhuaweicloud.com")
DT_SECRET = "SECcanary0123456789abcdef0123456789abcdef"
FS_SECRET = "canary-feishu-signing-secret"
TOKENS = {
    "dingtalk": DINGTALK_TOKEN,
    "wecom": WECOM_KEY,
    "feishu": FEISHU_TOKEN,
    "slack": SLACK_SECRET,
    "teams": TEAMS_SIG,
    "discord": DISCORD_TOKEN,
}
CLASSES: dict[str, type[ChatSink]] = {
    "dingtalk": DingTalkSink,
    "wecom": WeComSink,
    "feishu": FeishuSink,
    "slack": SlackSink,
    "teams": TeamsSink,
    "discord": DiscordSink,
}
RENDER: dict[str, Callable[[Notification, MessageContext], dict[str, Any]]] = {
    "dingtalk": dingtalk.render,
    "wecom": wecom.render,
    "feishu": feishu.render,
    "slack": slack.render,
    "teams": teams.render,
    "discord": discord.render,
}


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def make_event(n: int = 1, *, log_tail: tuple[str, ...] = ("Exception in thread main",)) -> Event:
    job = Job(
        id=f"0c4f{n:08d}-aaaa-bbbb",
        state=JobState.DEAD,
        queue=f"queue_{n % 3}",
        name=f"nightly_etl_{n}",
        owner="alice",
        app_id=f"application_1700000000000_{n:04d}",
        duration_ms=125_000,
        log_tail=log_tail,
        state_since=NOW - timedelta(minutes=2),
    )
    return Event(
        f"{n:032x}", EventKind.TRANSITION, "proj", job, JobState.RUNNING, JobState.DEAD, NOW
    )


def single(n: int = 1) -> Notification:
    return Notification("chat", (make_event(n),))


@pytest.fixture
async def vendors() -> AsyncIterator[FakeVendors]:
    async with FakeVendors(clock=lambda: NOW) as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def make_sink(
    product: str,
    url: str,
    session: aiohttp.ClientSession,
    clock: Callable[[], datetime] = lambda: NOW,
    secret: str | None = None,
) -> ChatSink:
    if product == "dingtalk":
        return DingTalkSink(
            "chat", url, session=session, context=CONTEXT, timeout_s=2, clock=clock, secret=secret
        )
    if product == "feishu":
        return FeishuSink(
            "chat", url, session=session, context=CONTEXT, timeout_s=2, clock=clock, secret=secret
        )
    assert secret is None, f"{product} does not sign"
    return CLASSES[product]("chat", url, session=session, context=CONTEXT, timeout_s=2, clock=clock)


async def outcome(sink: ChatSink, notification: Notification) -> SinkError | None:
    try:
        await sink.send(notification)
    except SinkError as error:
        return error
    return None


# --- contract: delivery ---------------------------------------------------------------------


@pytest.mark.parametrize("product", PRODUCTS)
async def test_a_real_send_to_the_fake_vendor_is_delivered(
    product: str, vendors: FakeVendors, session: aiohttp.ClientSession
) -> None:
    sink = make_sink(product, vendors.url(product), session)
    assert await outcome(sink, single()) is None
    [request] = vendors.received[product]
    assert 200 <= request.answer.status <= 299
    assert "nightly_etl_1" in request.body.decode()
    assert sink.name == "chat"


# --- contract: classification table ---------------------------------------------------------

OK, PERMANENT = "ok", "permanent"
TABLE: list[tuple[str, Answer, object, str]] = [
    ("dingtalk", Answer(200, DINGTALK_OK), OK, ""),
    ("dingtalk", Answer(200, DINGTALK_THROTTLED), 600.0, "130101"),
    ("dingtalk", Answer(200, DINGTALK_KEYWORDS), PERMANENT, "310000"),
    ("dingtalk", Answer(200, DINGTALK_SIGN), PERMANENT, "sign not match"),
    ("dingtalk", Answer(200, DINGTALK_SIGN_NEW), PERMANENT, "310000"),
    ("dingtalk", Answer(200, DINGTALK_TIMESTAMP), PERMANENT, "invalid timestamp"),
    ("dingtalk", Answer(200, DINGTALK_TOO_LARGE), PERMANENT, "460101"),
    ("dingtalk", Answer(200, '{"errcode":-1,"errmsg":"系统繁忙"}'), None, "-1"),
    ("dingtalk", Answer(200, "<html>gateway</html>"), None, "without a errcode"),
    ("dingtalk", Answer(503, "busy"), None, "HTTP 503"),
    ("wecom", Answer(200, WECOM_OK), OK, ""),
    ("wecom", Answer(200, WECOM_FREQ), 60.0, "45009"),
    ("wecom", Answer(200, WECOM_TOO_LONG), PERMANENT, "40058"),
    ("wecom", Answer(200, WECOM_INVALID_KEY), PERMANENT, "93000"),
    ("wecom", Answer(200, '{"errcode":-1,"errmsg":"system busy"}'), None, "system busy"),
    ("wecom", Answer(502, ""), None, "HTTP 502"),
    ("feishu", Answer(200, FEISHU_OK), OK, ""),
    ("feishu", Answer(200, FEISHU_THROTTLED), None, "11232"),
    ("feishu", Answer(200, FEISHU_SIGN), PERMANENT, "19021"),
    ("feishu", Answer(200, FEISHU_IP), PERMANENT, "19022"),
    ("feishu", Answer(200, FEISHU_KEYWORDS), PERMANENT, "19024"),
    ("feishu", Answer(200, FEISHU_BAD_REQUEST), PERMANENT, "9499"),
    ("feishu", Answer(200, FEISHU_BAD_TOKEN), PERMANENT, "19001"),
    ("feishu", Answer(200, FEISHU_PARAMS), PERMANENT, "19002"),
    ("feishu", Answer(400, FEISHU_BAD_REQUEST), PERMANENT, "HTTP 400"),
    ("slack", Answer(200, "ok"), OK, ""),
    ("slack", Answer(200, "accepted"), PERMANENT, "not ok"),
    ("slack", Answer(400, "invalid_payload"), PERMANENT, "invalid_payload"),
    ("slack", Answer(403, "action_prohibited"), PERMANENT, "action_prohibited"),
    ("slack", Answer(404, "channel_not_found"), PERMANENT, "channel_not_found"),
    ("slack", Answer(410, "channel_is_archived"), PERMANENT, "channel_is_archived"),
    ("slack", Answer(404, "no_service"), PERMANENT, "no_service"),
    ("slack", Answer(500, "rollup_error"), None, "rollup_error"),
    ("slack", Answer(429, "rate_limited", {"Retry-After": "7"}), 7.0, "HTTP 429"),
    ("teams", Answer(202, ""), OK, ""),
    ("teams", Answer(200, ""), OK, ""),
    ("teams", Answer(400, '{"error":{"code":"InvalidRequestContent"}}'), PERMANENT, "HTTP 400"),
    ("teams", Answer(401, "{}"), PERMANENT, "HTTP 401"),
    ("teams", Answer(404, '{"error":{"code":"WorkflowNotFound"}}'), PERMANENT, "HTTP 404"),
    ("teams", Answer(429, "", {"Retry-After": "30"}), 30.0, "HTTP 429"),
    ("teams", Answer(502, "Bad Gateway"), None, "HTTP 502"),
    ("discord", Answer(200, '{"id":"1"}'), OK, ""),
    ("discord", Answer(204, ""), OK, ""),
    ("discord", Answer(429, DISCORD_RATE_LIMITED, {"Retry-After": "2"}), 1.5, "rate limited"),
    ("discord", Answer(404, DISCORD_UNKNOWN_WEBHOOK), PERMANENT, "Unknown Webhook"),
    ("discord", Answer(400, DISCORD_INVALID_FORM), PERMANENT, "50035"),
    ("discord", Answer(500, "{}"), None, "HTTP 500"),
]


@pytest.mark.parametrize(
    ("product", "answer", "expected", "mentions"),
    TABLE,
    ids=[f"{p}-{a.status}-{m or 'ok'}" for p, a, _, m in TABLE],
)
async def test_each_vendor_answer_is_classified_right(
    product: str,
    answer: Answer,
    expected: object,
    mentions: str,
    vendors: FakeVendors,
    session: aiohttp.ClientSession,
) -> None:
    """`expected`: "ok", "permanent", or retryable with this wait (None: dispatcher's backoff)."""
    vendors.script(product, [answer])
    error = await outcome(make_sink(product, vendors.url(product), session), single())
    if expected == OK:
        assert error is None
        return
    assert error is not None
    assert mentions in error.reason
    if expected == PERMANENT:
        assert not error.retryable
    else:
        assert error.retryable
        assert error.retry_after == expected


@pytest.mark.parametrize("product", PRODUCTS)
async def test_a_connection_failure_is_retryable(
    product: str, vendors: FakeVendors, session: aiohttp.ClientSession
) -> None:
    url = vendors.url(product)
    await vendors.__aexit__(None, None, None)  # nobody listens there any more
    error = await outcome(make_sink(product, url, session), single())
    assert error is not None and error.retryable
    assert "127.0.0.1" in error.reason


# --- contract: secrets ----------------------------------------------------------------------


SECRET_CASES = [
    (product, status)
    for product in PRODUCTS
    for status in (200, 400, 500)
    if status != 200 or product not in ("teams", "discord")  # any 2xx is a success there
]


@pytest.mark.parametrize(("product", "status"), SECRET_CASES)
async def test_secrets_never_appear_in_error_text(
    product: str, status: int, vendors: FakeVendors, session: aiohttp.ClientSession
) -> None:
    url = vendors.url(product)
    secret = {"dingtalk": DT_SECRET, "feishu": FS_SECRET}.get(product)
    echo = json.dumps({"errcode": 1, "code": 1, "errmsg": url, "msg": f"{secret} {url}"})
    vendors.script(product, [Answer(status, f"{echo} {TOKENS[product]} {DT_SECRET} {FS_SECRET}")])
    error = await outcome(make_sink(product, url, session, secret=secret), single())
    assert error is not None
    for text in (str(error), repr(error), error.reason):
        assert TOKENS[product] not in text
        assert url not in text
        if secret is not None:
            assert secret not in text


@pytest.mark.parametrize("product", PRODUCTS)
def test_a_sinks_repr_hides_its_url(product: str) -> None:
    url = f"https://vendor.example/hook/{TOKENS[product]}?key={TOKENS[product]}"
    sink = CLASSES[product]("chat", url, session=None, context=CONTEXT)  # type: ignore[arg-type]
    assert TOKENS[product] not in repr(sink)


# --- contract: truncation and determinism ---------------------------------------------------

LONG_LOG = tuple(f"ERROR stage {i} failed: " + "错误 " * 600 for i in range(10))


def _burst(count: int) -> Notification:
    return Notification("chat", tuple(make_event(i, log_tail=LONG_LOG) for i in range(count)))


def _limits(product: str, body: dict[str, Any]) -> None:
    encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    if product == "dingtalk":
        assert len(encoded) < 20_000
    elif product == "wecom":
        assert len(body["markdown"]["content"].encode()) <= 4096
    elif product == "feishu":
        assert len(encoded) <= 20 * 1024 - 200  # room left for the signature fields
    elif product == "slack":
        assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in body["blocks"][:2])
    elif product == "teams":
        assert len(encoded) <= 28 * 1024
    else:
        assert len(body["embeds"][0]["description"]) <= 4096


@pytest.mark.parametrize("product", PRODUCTS)
@pytest.mark.parametrize("size", [1, 500], ids=["huge-logs", "500-event-digest"])
async def test_truncation_keeps_every_message_within_its_products_limit(
    product: str, size: int, vendors: FakeVendors, session: aiohttp.ClientSession
) -> None:
    notification = _burst(size)
    context = MessageContext(digest_jobs=500, log_lines=10)
    body = RENDER[product](notification, context)
    _limits(product, body)
    assert "more" in json.dumps(body, ensure_ascii=False)  # the "+N more" marker
    sink = CLASSES[product]("chat", vendors.url(product), session=session, context=context)
    assert await outcome(sink, notification) is None  # the fake vendor enforces the limit too


@pytest.mark.parametrize("product", PRODUCTS)
def test_render_is_deterministic_and_carries_the_event_id(product: str) -> None:
    notification = Notification("chat", (make_event(1), make_event(2)))
    context = CONTEXT.at(NOW)
    first = json.dumps(RENDER[product](notification, context), ensure_ascii=False)
    assert first == json.dumps(RENDER[product](notification, context), ensure_ascii=False)
    assert notification.notification_id in first
    assert make_event(2).job.id in first
    assert "region=cn-north-4" in first


def test_default_rate_limits_stay_under_every_vendors_published_limit() -> None:
    assert DEFAULT_RATE_LIMITS["dingtalk"] == (None, 18)
    assert DEFAULT_RATE_LIMITS["wecom"][1] is not None and DEFAULT_RATE_LIMITS["wecom"][1] < 20
    per_second, per_minute = DEFAULT_RATE_LIMITS["feishu"]
    assert per_second is not None and per_second < 5
    assert per_minute is not None and per_minute < 100
    for product in ("slack", "teams", "discord"):
        assert DEFAULT_RATE_LIMITS[product] == (1, None)
    assert DEFAULT_RATE_LIMITS["webhook"] == (None, None)
    assert set(PRODUCTS) <= set(DEFAULT_RATE_LIMITS)


# --- product specifics ----------------------------------------------------------------------


async def test_dingtalk_signs_each_attempt_and_the_robot_accepts_it(
    vendors: FakeVendors, session: aiohttp.ClientSession
) -> None:
    vendors.dingtalk_secret = DT_SECRET
    clock = Clock()
    sink = make_sink("dingtalk", vendors.url("dingtalk"), session, clock, secret=DT_SECRET)
    assert await outcome(sink, single()) is None
    clock.now += timedelta(seconds=5)
    assert await outcome(sink, single()) is None
    first, second = (r.path_qs for r in vendors.received["dingtalk"])
    assert f"timestamp={int(NOW.timestamp() * 1000)}" in first
    assert first != second  # a fresh timestamp and signature per attempt
    assert "%252B" not in first + second and "%253D" not in first + second


def test_dingtalk_puts_the_vector_signature_in_the_url_encoded_once() -> None:
    vector = VECTORS["dingtalk"]["vectors"][0]
    url = "https://oapi.dingtalk.com/robot/send?access_token=abc"
    sink = DingTalkSink(
        "chat",
        url,
        session=None,
        context=CONTEXT,
        secret=vector["secret"],  # type: ignore[arg-type]
    )
    moment = datetime.fromtimestamp(vector["timestamp_ms"] / 1000, tz=UTC)
    assert str(sink.target(moment)) == url + vector["query_suffix"]


async def test_dingtalk_with_a_wrong_secret_or_a_stale_clock_fails_permanently(
    vendors: FakeVendors, session: aiohttp.ClientSession
) -> None:
    vendors.dingtalk_secret = DT_SECRET
    wrong = make_sink("dingtalk", vendors.url("dingtalk"), session, secret="SECwrong")
    error = await outcome(wrong, single())
    assert error is not None and not error.retryable and "sign not match" in error.reason
    stale = Clock()
    stale.now -= timedelta(hours=2)
    late = make_sink("dingtalk", vendors.url("dingtalk"), session, stale, secret=DT_SECRET)
    error = await outcome(late, single())
    assert error is not None and "invalid timestamp" in error.reason


async def test_dingtalk_adds_a_keyword_when_the_robot_demands_one(
    vendors: FakeVendors, session: aiohttp.ClientSession
) -> None:
    vendors.dingtalk_keywords = ("告警",)
    bare = make_sink("dingtalk", vendors.url("dingtalk"), session)
    error = await outcome(bare, single())
    assert error is not None and "310000" in error.reason and not error.retryable
    keyed = DingTalkSink(
        "chat", vendors.url("dingtalk"), session=session, context=CONTEXT, keywords=["告警"]
    )
    assert await outcome(keyed, single()) is None


async def test_feishu_signs_in_the_body_and_a_wrong_secret_is_19021(
    vendors: FakeVendors, session: aiohttp.ClientSession
) -> None:
    vendors.feishu_secret = FS_SECRET
    good = make_sink("feishu", vendors.url("feishu"), session, secret=FS_SECRET)
    assert await outcome(good, single()) is None
    body = vendors.received["feishu"][0].json
    assert body["timestamp"] == str(int(NOW.timestamp()))
    assert body["msg_type"] == "interactive"
    bad = make_sink("feishu", vendors.url("feishu"), session, secret="other")
    error = await outcome(bad, single())
    assert error is not None and "19021" in error.reason and not error.retryable


async def test_discord_posts_with_wait_true_and_no_mentions(
    vendors: FakeVendors, session: aiohttp.ClientSession
) -> None:
    assert await outcome(make_sink("discord", vendors.url("discord"), session), single()) is None
    [request] = vendors.received["discord"]
    assert "wait=true" in request.path_qs
    assert request.json["allowed_mentions"] == {"parse": []}
    assert request.answer.status == 200


async def test_teams_gets_an_adaptive_card_inside_a_message(
    vendors: FakeVendors, session: aiohttp.ClientSession
) -> None:
    assert await outcome(make_sink("teams", vendors.url("teams"), session), single()) is None
    body = vendors.received["teams"][0].json
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert {"title": "Queue", "value": "queue_1"} in card["body"][1]["facts"]
    assert card["actions"][0]["url"].startswith("https://console.huaweicloud.com/dli/")


async def test_wecom_and_dingtalk_send_markdown_and_slack_sends_blocks(
    vendors: FakeVendors, session: aiohttp.ClientSession
) -> None:
    for product in ("wecom", "dingtalk", "slack"):
        assert await outcome(make_sink(product, vendors.url(product), session), single()) is None
    assert vendors.received["wecom"][0].json["msgtype"] == "markdown"
    markdown = vendors.received["dingtalk"][0].json["markdown"]
    assert markdown["title"] == "DLI job nightly_etl_1 DEAD on queue_1"
    assert "2m0s ago" in markdown["text"]
    blocks = vendors.received["slack"][0].json["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "context"]
