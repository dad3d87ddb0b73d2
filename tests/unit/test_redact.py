"""Credential redaction of free text and URLs."""

from __future__ import annotations

import pytest

from monitor.redact import MASK, redact_text, redact_url, scrub


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("stdout: connecting with password=hunter22 ok", "hunter22"),
        ('{"password": "s3cr3t", "user": "bob"}', "s3cr3t"),
        ("--conf spark.hadoop.fs.obs.secret.key=ABCDEF123 --conf x=y", "ABCDEF123"),
        ("Authorization: Bearer abcdefghijkl", "abcdefghijkl"),
        ("token: xyz123 next", "xyz123"),
        ("ak=AKXX123 sk=SKYY456", "SKYY456"),
        ("jdbc:mysql://h/db?user=a&password=p1x&x=2", "p1x"),
        ("'access_key': 'AKIAEXAMPLE'", "AKIAEXAMPLE"),
    ],
)
def test_credential_values_are_masked(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted
    assert MASK in redacted


@pytest.mark.parametrize(
    "text",
    [
        "YARN Diagnostics: Application failed",
        "stdout: task completed",
        "stderr: java.lang.OutOfMemoryError: Java heap space",
    ],
)
def test_ordinary_log_lines_are_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_a_webhook_url_keeps_only_scheme_and_host() -> None:
    url = "https://oapi.dingtalk.com/robot/send?access_token=CANARY-TOKEN"
    assert redact_url(url) == "https://oapi.dingtalk.com/…"
    assert redact_url("not a url") == MASK
    assert redact_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


def test_scrub_replaces_every_known_secret_longest_first() -> None:
    text = "key CANARY-SK-123456 and its prefix CANARY-SK"
    assert scrub(text, {"CANARY-SK", "CANARY-SK-123456"}) == "key *** and its prefix ***"
    assert scrub("short ab", {"ab"}) == "short ab"
