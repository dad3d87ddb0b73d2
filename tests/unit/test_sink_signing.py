"""DingTalk and Feishu signatures against the published vectors, incl. the negative one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.sinks.signing import (
    dingtalk_query_suffix,
    dingtalk_sign,
    dingtalk_timestamp,
    feishu_body_fields,
    feishu_sign,
    feishu_timestamp,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parent.parent / "data" / "sink-vectors.json").read_text()
)


@pytest.mark.parametrize("vector", VECTORS["dingtalk"]["vectors"], ids=lambda v: v["secret"])
def test_dingtalk_signatures_match_every_vector(vector: dict[str, Any]) -> None:
    assert dingtalk_sign(vector["secret"], vector["timestamp_ms"]) == vector["sign_base64"]
    suffix = dingtalk_query_suffix(vector["secret"], vector["timestamp_ms"])
    assert suffix == vector["query_suffix"]


@pytest.mark.parametrize("vector", VECTORS["feishu"]["vectors"], ids=lambda v: v["secret"])
def test_feishu_signatures_match_every_vector(vector: dict[str, Any]) -> None:
    assert feishu_sign(vector["secret"], vector["timestamp_s"]) == vector["sign"]
    assert feishu_body_fields(vector["secret"], vector["timestamp_s"]) == vector["body_fields"]


def test_feishu_does_not_produce_the_dingtalk_style_negative_vector() -> None:
    wrong = VECTORS["feishu"]["negative_vector_dingtalk_style_for_demo_1599360473"]
    assert feishu_sign("demo", 1599360473) != wrong
    # The negative vector is exactly what the DingTalk key/message order gives.
    assert dingtalk_sign("demo", 1599360473) == wrong


def test_dingtalk_counts_milliseconds_and_feishu_seconds() -> None:
    now = datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert dingtalk_timestamp(now) == 1700000000123
    assert feishu_timestamp(now) == 1700000000


def test_a_different_timestamp_gives_a_different_signature() -> None:
    assert dingtalk_sign("SECx", 1) != dingtalk_sign("SECx", 2)
    assert feishu_sign("x", 1) != feishu_sign("x", 2)
