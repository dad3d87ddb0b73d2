"""AK/SK signing against the SDK-recorded vectors, verification, and AkSkAuth on real URLs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import yarl

from monitor.dli.auth import AkSkAuth
from monitor.dli.signer import parse_sdk_date, sign, verify

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parent.parent / "data" / "signing-vectors.json").read_text()
)["vectors"]

ADDED_BY_SIGN = {"authorization", "x-sdk-date", "host", "x-security-token"}


def _by_name(name: str) -> dict[str, Any]:
    return next(v for v in VECTORS if v["name"] == name)


def _parts(vector: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    url = urlsplit(vector["url"])
    return url.path, parse_qsl(url.query, keep_blank_values=True)


def _caller_headers(vector: dict[str, Any]) -> dict[str, str]:
    """The headers a caller passes in; sign() adds Host, X-Sdk-Date and the token itself."""
    return {k: v for k, v in vector["headers_sent"].items() if k.lower() not in ADDED_BY_SIGN}


def test_there_are_vectors_to_check() -> None:
    assert len(VECTORS) >= 8


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_sign_reproduces_the_canonical_request_string_to_sign_and_authorization(
    vector: dict[str, Any],
) -> None:
    path, query = _parts(vector)
    signed = sign(
        method=vector["method"],
        host=vector["headers_sent"]["Host"],
        path=path,
        query=query,
        headers=_caller_headers(vector),
        body=vector["body"].encode(),
        access_key=vector["ak"],
        secret_key=vector["sk"],
        moment=parse_sdk_date(vector["headers_sent"]["X-Sdk-Date"]),
        security_token=vector.get("security_token"),
    )
    assert signed.canonical_request == vector["canonical_request"]
    assert signed.string_to_sign == vector["string_to_sign"]
    assert signed.authorization == vector["authorization"]
    assert signed.headers == vector["headers_sent"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_verify_accepts_every_vector(vector: dict[str, Any]) -> None:
    path, query = _parts(vector)
    reason = verify(
        method=vector["method"],
        path=path,
        query=query,
        headers=vector["headers_sent"],
        body=vector["body"].encode(),
        secret_for={vector["ak"]: vector["sk"]},
    )
    assert reason is None


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_verify_rejects_a_tampered_signature(vector: dict[str, Any]) -> None:
    path, query = _parts(vector)
    headers = dict(vector["headers_sent"])
    last = headers["Authorization"][-1]
    headers["Authorization"] = headers["Authorization"][:-1] + ("0" if last != "0" else "1")
    reason = verify(
        method=vector["method"],
        path=path,
        query=query,
        headers=headers,
        body=b"",
        secret_for={vector["ak"]: vector["sk"]},
    )
    assert reason == "verify aksk signature fail"


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["name"])
def test_verify_rejects_a_tampered_query(vector: dict[str, Any]) -> None:
    path, query = _parts(vector)
    reason = verify(
        method=vector["method"],
        path=path,
        query=[*query, ("from", "999")],
        headers=vector["headers_sent"],
        body=b"",
        secret_for={vector["ak"]: vector["sk"]},
    )
    assert reason == "verify aksk signature fail"


def test_verify_rejects_an_unknown_access_key() -> None:
    vector = _by_name("dli-list-full-client")
    path, query = _parts(vector)
    reason = verify(
        method="GET",
        path=path,
        query=query,
        headers=vector["headers_sent"],
        body=b"",
        secret_for={"SOMEOTHERAK": vector["sk"]},
    )
    assert reason == "Get secretKey failed, ak not exist"


def test_verify_rejects_a_signature_made_with_another_secret() -> None:
    vector = _by_name("dli-state-full-client")
    path, query = _parts(vector)
    reason = verify(
        method="GET",
        path=path,
        query=query,
        headers=vector["headers_sent"],
        body=b"",
        secret_for={vector["ak"]: vector["sk"] + "x"},
    )
    assert reason == "verify aksk signature fail"


@pytest.mark.parametrize(
    "name", ["dli-list-full-client", "dli-state-full-client", "dli-list-temporary-credentials"]
)
async def test_aksk_auth_on_a_yarl_url_produces_the_vector_headers(name: str) -> None:
    vector = _by_name(name)
    moment = parse_sdk_date(vector["headers_sent"]["X-Sdk-Date"])
    auth = AkSkAuth(vector["ak"], vector["sk"], vector.get("security_token"), clock=lambda: moment)
    headers = await auth.headers(
        "GET", yarl.URL(vector["url"], encoded=True), _caller_headers(vector), b""
    )
    assert headers["Authorization"] == vector["authorization"]
    assert headers == vector["headers_sent"]


async def test_aksk_auth_signs_a_non_default_port_into_the_host_header() -> None:
    moment = parse_sdk_date("20240102T030405Z")
    auth = AkSkAuth("AK", "SK", clock=lambda: moment)
    on_port = await auth.headers("GET", yarl.URL("http://127.0.0.1:8080/v2.0/p/batches"), {}, b"")
    default = await auth.headers("GET", yarl.URL("https://dli.example.com:443/v2.0/p/"), {}, b"")
    assert on_port["Host"] == "127.0.0.1:8080"
    assert default["Host"] == "dli.example.com"
