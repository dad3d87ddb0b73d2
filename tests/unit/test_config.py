"""The config file: parsing, `${ENV}` and `*_file` resolution, problem reports, masking."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from monitor.config import (
    AkSkAuthSettings,
    ConfigError,
    ConsoleSinkSettings,
    NoAuthSettings,
    TokenAuthSettings,
    WebhookSinkSettings,
    describe_projects,
    format_duration,
    load_settings,
    parse_duration,
    parse_settings,
    reference_table,
    render_effective,
    secret_values,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "base" / "example-config.yaml"

CANARY_AK = "CANARY-AK-0000000000000001"
CANARY_SK = "CANARY-SK-unit-config-secret-0001"
CANARY_TOKEN = "CANARY-SK-security-token-0001"
CANARY_URL_TOKEN = "CANARY-SK-webhook-path-token-0001"
CANARY_HEADER = "CANARY-SK-header-value-0001"
CANARY_PASSWORD = "CANARY-SK-iam-password-0001"
WEBHOOK_URL = f"https://hooks.example.invalid/hook/{CANARY_URL_TOKEN}"
NOT_A_DURATION = "not a duration: use seconds or a value such as 30s, 5m, 1h30m, 250ms"
CANARIES = (CANARY_AK, CANARY_SK, CANARY_TOKEN, CANARY_URL_TOKEN, CANARY_HEADER)

ENV = {
    "HUAWEICLOUD_SDK_AK": CANARY_AK,
    "HUAWEICLOUD_SDK_SK": CANARY_SK,
    "HUAWEICLOUD_SDK_SECURITY_TOKEN": CANARY_TOKEN,
    "OPS_WEBHOOK_URL": WEBHOOK_URL,
    "OPS_WEBHOOK_TOKEN": CANARY_HEADER,
    "DINGTALK_WEBHOOK_URL": "https://oapi.dingtalk.com/robot/send?access_token=CANARY-DT-TOKEN",
    "AM_PASSWORD": "CANARY-AM-PASSWORD",
}

FULL: dict[str, Any] = {
    "dli": {
        "endpoint": "https://dli.cn-north-4.myhuaweicloud.com/",
        "project_id": "48cc2c48765f481480c7db940d6409d1",
        "auth": {
            "type": "aksk",
            "access_key": "${HUAWEICLOUD_SDK_AK}",
            "secret_key": "${HUAWEICLOUD_SDK_SK}",
            "security_token": "${HUAWEICLOUD_SDK_SECURITY_TOKEN:-}",
        },
        "page_size": 50,
        "request_timeout": "15s",
        "max_requests_per_minute": 0,
        "retry": {"attempts": 2, "backoff": ["250ms", "1s"]},
        "max_concurrency": 8,
    },
    "queues": ["etl", "adhoc"],
    "poll": {"interval": "1m", "baseline": "notify", "listing_attempts": 5},
    "state": {"path": "/var/lib/dli-monitor/state.db"},
    "server": {"listen": "[::]:9200", "enabled": False},
    "delivery": {
        "backoff": ["5s", "30s", "2m", "10m"],
        "max_age": "1h30m",
        "timeout": 7,
        "batch_size": 10,
    },
    "shutdown_timeout": "20s",
    "sinks": [
        {
            "name": "ops",
            "type": "webhook",
            "url": "${OPS_WEBHOOK_URL}",
            "headers": {"Authorization": "Bearer ${OPS_WEBHOOK_TOKEN}"},
            "timeout": "3s",
        },
        {"name": "stdout", "type": "console"},
    ],
}


def minimal(**overrides: Any) -> dict[str, Any]:
    """The smallest valid config, with top-level keys replaced by `overrides`."""
    data: dict[str, Any] = {
        "dli": {
            "endpoint": "http://127.0.0.1:8080",
            "project_id": "abc123",
            "auth": {"type": "none"},
        },
        "queues": ["etl"],
    }
    data.update(overrides)
    return data


def problems_of(data: object, environ: dict[str, str] | None = None, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, environ or {}, **kwargs)
    return caught.value.problems


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


# --- a valid file ------------------------------------------------------------------------


def test_a_full_config_parses_into_typed_settings() -> None:
    settings = parse_settings(copy.deepcopy(FULL), ENV)

    dli = settings.dli
    assert dli.endpoint == "https://dli.cn-north-4.myhuaweicloud.com"
    assert isinstance(dli.auth, AkSkAuthSettings)
    assert dli.auth.access_key.get_secret_value() == CANARY_AK
    assert dli.auth.secret_key.get_secret_value() == CANARY_SK
    assert dli.auth.security_token is not None
    assert dli.auth.security_token.get_secret_value() == CANARY_TOKEN
    assert (dli.page_size, dli.request_timeout, dli.max_requests_per_minute) == (50, 15.0, 0)
    assert (dli.retry.attempts, dli.retry.backoff, dli.max_concurrency) == (2, [0.25, 1.0], 8)
    assert settings.queues == ["etl", "adhoc"]
    assert (settings.poll.interval, settings.poll.baseline, settings.poll.listing_attempts) == (
        60.0,
        "notify",
        5,
    )
    assert settings.state.path == Path("/var/lib/dli-monitor/state.db")
    assert (settings.server.host, settings.server.port, settings.server.enabled) == (
        "::",
        9200,
        False,
    )
    assert settings.delivery.backoff == [5.0, 30.0, 120.0, 600.0]
    assert (settings.delivery.max_age, settings.delivery.timeout) == (5400.0, 7.0)
    assert settings.delivery.batch_size == 10
    assert settings.shutdown_timeout == 20.0
    ops, stdout = settings.sinks
    assert isinstance(ops, WebhookSinkSettings)
    assert ops.url.get_secret_value() == WEBHOOK_URL
    assert ops.headers["Authorization"].get_secret_value() == f"Bearer {CANARY_HEADER}"
    assert ops.timeout == 3.0
    assert isinstance(stdout, ConsoleSinkSettings)


def test_omitted_sections_take_the_documented_defaults() -> None:
    settings = parse_settings(minimal(), {})

    assert isinstance(settings.dli.auth, NoAuthSettings)
    assert settings.dli.page_size == 100
    assert settings.dli.request_timeout == 10.0
    assert settings.dli.max_requests_per_minute == 60
    assert (settings.dli.retry.attempts, settings.dli.retry.backoff) == (4, [1.0, 2.0, 4.0])
    assert settings.dli.max_concurrency == 4
    assert (settings.poll.interval, settings.poll.baseline, settings.poll.listing_attempts) == (
        30.0,
        "silent",
        3,
    )
    assert settings.state.path == Path("./dli-monitor.db")
    assert (settings.server.host, settings.server.port, settings.server.enabled) == (
        "0.0.0.0",
        9108,
        True,
    )
    assert settings.delivery.backoff == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0]
    assert (settings.delivery.max_age, settings.delivery.timeout) == (86400.0, 10.0)
    assert settings.delivery.batch_size == 100
    assert settings.shutdown_timeout == 20.0
    assert settings.sinks == []


def test_the_star_watches_every_queue() -> None:
    assert parse_settings(minimal(queues="*"), {}).queues == "*"


def test_token_auth_parses_with_the_default_iam_endpoint() -> None:
    auth = {"type": "token", "domain_name": "acme", "username": "bot", "password": "${PW}"}
    settings = parse_settings(minimal(dli={**minimal()["dli"], "auth": auth}), {"PW": "pw-1234"})

    assert isinstance(settings.dli.auth, TokenAuthSettings)
    assert settings.dli.auth.iam_endpoint == "https://iam.myhuaweicloud.com"
    assert settings.dli.auth.password.get_secret_value() == "pw-1234"


def test_the_example_config_in_deploy_loads_with_its_environment_variables_set() -> None:
    settings = load_settings(EXAMPLE, ENV)

    assert isinstance(settings.dli.auth, AkSkAuthSettings)
    assert settings.dli.auth.secret_key.get_secret_value() == CANARY_SK
    assert [sink.name for sink in settings.sinks] == ["ops", "stdout", "oncall-cn", "am"]


def test_the_example_config_names_every_environment_variable_it_needs() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(EXAMPLE, {})

    assert sorted(caught.value.problems) == sorted(
        [
            "dli.auth.access_key: environment variable HUAWEICLOUD_SDK_AK is not set",
            "dli.auth.secret_key: environment variable HUAWEICLOUD_SDK_SK is not set",
            "sinks[0].url: environment variable OPS_WEBHOOK_URL is not set",
            "sinks[0].headers.Authorization: environment variable OPS_WEBHOOK_TOKEN is not set",
            "sinks[2].url: environment variable DINGTALK_WEBHOOK_URL is not set",
            "sinks[3].basic_auth.password: environment variable AM_PASSWORD is not set",
        ]
    )


def test_the_example_config_uses_every_key_of_the_reference() -> None:
    text = EXAMPLE.read_text()
    keys = [line.split("`")[1] for line in reference_table().splitlines()[2:]]
    leaves = {key.rsplit(".", 1)[-1].removesuffix("[]") for key in keys}

    missing = [leaf for leaf in leaves if f"{leaf}:" not in text]
    assert missing == []


# --- environment and files ---------------------------------------------------------------


def test_environment_references_resolve_with_defaults_and_escapes() -> None:
    auth = {
        "type": "aksk",
        "access_key": "${AK}",
        "secret_key": "pre-${UNSET:-fallback}-${EMPTY:-empty}-$${LITERAL}",
        "security_token": "${UNSET_TOO:-}",
    }
    data = minimal(dli={**minimal()["dli"], "auth": auth})

    settings = parse_settings(data, {"AK": "ak-value", "EMPTY": ""})

    assert isinstance(settings.dli.auth, AkSkAuthSettings)
    assert settings.dli.auth.access_key.get_secret_value() == "ak-value"
    assert settings.dli.auth.secret_key.get_secret_value() == "pre-fallback-empty-${LITERAL}"
    assert settings.dli.auth.security_token is None


def test_environment_values_become_numbers_and_durations_where_the_key_needs_them() -> None:
    data = minimal(poll={"interval": "${INTERVAL}", "listing_attempts": "${ATTEMPTS}"})

    settings = parse_settings(data, {"INTERVAL": "2m", "ATTEMPTS": "7"})

    assert (settings.poll.interval, settings.poll.listing_attempts) == (120.0, 7)


def test_an_unset_variable_is_reported_at_its_key_without_any_value() -> None:
    auth = {"type": "aksk", "access_key": "${MY_AK}", "secret_key": "${MY_SK}"}
    problems = problems_of(minimal(dli={**minimal()["dli"], "auth": auth}), {"MY_AK": CANARY_AK})

    assert problems == ["dli.auth.secret_key: environment variable MY_SK is not set"]


def test_a_malformed_reference_is_a_problem() -> None:
    data = minimal(state={"path": "${not a name}/x"}, queues=["etl"])

    assert problems_of(data) == ["state.path: invalid reference: use ${NAME} or ${NAME:-default}"]


def test_secret_files_are_read_relative_to_the_config_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "ak").write_text(f"  {CANARY_AK}\n")
    (secrets / "sk").write_text(f"{CANARY_SK}\n")
    (tmp_path / "hook").write_text(WEBHOOK_URL + "\n")
    data = minimal(
        dli={
            **minimal()["dli"],
            "auth": {
                "type": "aksk",
                "access_key_file": "secrets/ak",
                "secret_key_file": "${SECRETS_DIR}/sk",
            },
        },
        sinks=[{"name": "ops", "type": "webhook", "url_file": "hook"}],
    )
    config = write(tmp_path / "config.yaml", data)

    settings = load_settings(config, {"SECRETS_DIR": str(secrets)})

    auth = settings.dli.auth
    assert isinstance(auth, AkSkAuthSettings)
    assert auth.access_key.get_secret_value() == CANARY_AK
    assert auth.secret_key.get_secret_value() == CANARY_SK
    assert auth.access_key_file == secrets / "ak"
    sink = settings.sinks[0]
    assert isinstance(sink, WebhookSinkSettings)
    assert sink.url.get_secret_value() == WEBHOOK_URL


def test_parse_settings_resolves_files_against_the_given_base_dir(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("pw-from-file\n")
    auth = {"type": "token", "domain_name": "acme", "username": "bot", "password_file": "pw"}

    settings = parse_settings(minimal(dli={**minimal()["dli"], "auth": auth}), {}, tmp_path)

    assert isinstance(settings.dli.auth, TokenAuthSettings)
    assert settings.dli.auth.password.get_secret_value() == "pw-from-file"


def test_an_unreadable_secret_file_is_one_problem_at_its_file_key(tmp_path: Path) -> None:
    auth = {"type": "aksk", "access_key": "ak-value", "secret_key_file": "nope/sk"}

    problems = problems_of(minimal(dli={**minimal()["dli"], "auth": auth}), base_dir=tmp_path)

    assert problems == [
        f"dli.auth.secret_key_file: cannot read file: {tmp_path / 'nope/sk'}"
        " (No such file or directory)"
    ]


def test_a_value_and_its_file_together_are_a_problem(tmp_path: Path) -> None:
    (tmp_path / "sk").write_text("from-file")
    auth = {"type": "aksk", "access_key": "a-key", "secret_key": "inline", "secret_key_file": "sk"}

    problems = problems_of(minimal(dli={**minimal()["dli"], "auth": auth}), base_dir=tmp_path)

    assert problems == [
        "dli.auth.secret_key_file: set either secret_key or secret_key_file, not both"
    ]


# --- reporting problems ------------------------------------------------------------------


def test_a_bad_config_reports_every_problem_at_once_with_exact_key_paths() -> None:
    data = {
        "dli": {
            "endpiont": "https://dli.cn-north-4.myhuaweicloud.com",
            "project_id": "48cc2c48765f481480c7db940d6409d1",
            "auth": {"type": "password", "secret_key": CANARY_SK},
            "page_size": 0,
        },
        "queues": [],
        "poll": {"interval": "5x"},
        "sinks": [
            {"name": "ops", "type": "webhook", "url": WEBHOOK_URL},
            {"name": "ops", "type": "webhook"},
        ],
    }

    problems = problems_of(data)

    assert sorted(problems) == sorted(
        [
            "dli.endpoint: field required",
            "dli.endpiont: unknown key (did you mean 'endpoint'?)",
            "dli.auth.type: must be one of 'aksk', 'token', 'none'",
            "dli.page_size: input should be greater than or equal to 1",
            'queues: must not be empty: list queue names, or use "*" for every queue',
            f"poll.interval: {NOT_A_DURATION}",
            "sinks[1].url: field required",
            "sinks[1].name: duplicate sink name (also sinks[0])",
        ]
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"queues": "etl"}, 'queues: must be a list of queue names, or "*" for every queue'),
        ({"queues": ["etl", "etl"]}, "queues[1]: duplicate queue (also queues[0])"),
        ({"queues": ["etl", "_x"]}, "queues[1]: not a queue name (letters, digits and '_')"),
        ({"server": {"listen": "0.0.0.0:70000"}}, "server.listen: port must be 0-65535"),
        (
            {"server": {"listen": "9108"}},
            "server.listen: must be HOST:PORT, e.g. 0.0.0.0:9108 or [::]:9108",
        ),
        (
            {"server": {"listen": ":::9108"}},
            "server.listen: an IPv6 address goes in brackets, e.g. [::]:9108",
        ),
        (
            {"poll": {"interval": "500ms"}},
            "poll.interval: input should be greater than or equal to 1",
        ),
        ({"poll": {"baseline": "loud"}}, "poll.baseline: input should be 'silent' or 'notify'"),
        ({"delivery": {"timeout": "-1s"}}, "delivery.timeout: must not be negative"),
        (
            {"delivery": {"backoff": []}},
            "delivery.backoff: list should have at least 1 item after validation, not 0",
        ),
        (
            {"sinks": [{"name": "x", "type": "pigeon"}]},
            "sinks[0].type: must be one of 'webhook', 'console', 'feishu', 'dingtalk', 'wecom',"
            " 'slack', 'teams', 'discord', 'alertmanager'",
        ),
        ({"sinks": [{"name": "x"}]}, "sinks[0].type: field required"),
        (
            {"sinks": [{"name": "x y", "type": "console"}]},
            "sinks[0].name: must be 1-64 letters, digits, '_', '.' or '-',"
            " starting with a letter or digit",
        ),
        (
            {"sinks": [{"name": "x", "type": "webhook", "url": "ftp://h/x"}]},
            "sinks[0].url: must be an http:// or https:// URL with a host",
        ),
        (
            {"sinks": [{"name": "x", "type": "console", "url": "http://h"}]},
            "sinks[0].url: unknown key",
        ),
        ({"sinks": "ops"}, "sinks: must be a list"),
        ({"state": ["a"]}, "state: must be a mapping (key: value)"),
        (
            {"shutdown_timeout": "soon"},
            f"shutdown_timeout: {NOT_A_DURATION}",
        ),
        (
            {
                "sinks": [
                    {"name": "x", "type": "webhook", "url": "http://h", "headers": {"a b": "v"}}
                ]
            },
            "sinks[0].headers.a b: not a valid HTTP header name",
        ),
    ],
)
def test_each_invalid_value_is_reported_at_its_key(
    overrides: dict[str, Any], expected: str
) -> None:
    assert problems_of(minimal(**overrides)) == [expected]


@pytest.mark.parametrize(
    ("dli", "expected"),
    [
        ({"endpoint": "not a url"}, "dli.endpoint: must be an http:// or https:// URL with a host"),
        ({"project_id": "48cc-2c48"}, "dli.project_id: must be 1-64 letters or digits"),
        ({"auth": "aksk"}, "dli.auth: must be a mapping (key: value)"),
        (
            {"auth": {"type": "aksk", "acces_key": "a", "secret_key": "b"}},
            "dli.auth.acces_key: unknown key (did you mean 'access_key'?)",
        ),
        (
            {"retry": {"backoff": ["1s", "2x"]}},
            f"dli.retry.backoff[1]: {NOT_A_DURATION}",
        ),
        ({"page_size": 1001}, "dli.page_size: input should be less than or equal to 1000"),
    ],
)
def test_dli_problems_name_the_exact_key(dli: dict[str, Any], expected: str) -> None:
    data = minimal()
    data["dli"].update(dli)
    problems = problems_of(data)
    assert expected in problems
    assert len(problems) <= 2  # acces_key also leaves access_key missing


def test_a_top_level_that_is_not_a_mapping_is_one_problem() -> None:
    assert problems_of(["dli"]) == ["(top level): must be a mapping of settings, got list"]
    assert problems_of(None) == ["(top level): must be a mapping of settings, got nothing"]


def test_a_yaml_syntax_error_is_one_problem_with_line_and_column(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", f"dli:\n  endpoint: [x\n  secret: {CANARY_SK}\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})

    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("line 3, column ")
    assert CANARY_SK not in str(caught.value)


def test_a_key_given_twice_in_one_mapping_is_a_problem(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "queues: [a]\nqueues: [b]\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})

    assert caught.value.problems == ["line 2, column 1: duplicate key 'queues'"]


def test_a_missing_config_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "nope.yaml", {})

    assert caught.value.problems == [
        f"{tmp_path / 'nope.yaml'}: cannot read file (No such file or directory)"
    ]


def test_config_error_text_lists_every_problem() -> None:
    error = ConfigError(["a.b: one", "c[0]: two"])
    assert str(error) == "invalid configuration:\n  a.b: one\n  c[0]: two"


# --- secrets -----------------------------------------------------------------------------


def test_no_secret_appears_in_any_problem_text() -> None:
    data = copy.deepcopy(FULL)
    data["dli"]["auth"]["access_key"] = [CANARY_AK]  # wrong type: pydantic would echo input
    data["dli"]["auth"]["secret_key"] = {"nested": CANARY_SK}
    data["dli"]["auth"]["security_token"] = 12345678
    data["sinks"][0]["url"] = f"ftp://{CANARY_URL_TOKEN}"
    data["sinks"][0]["headers"] = {"Bad Header": CANARY_HEADER, "X-Ok": [CANARY_HEADER]}
    data["sinks"][0]["timeout"] = CANARY_SK

    with pytest.raises(ConfigError) as caught:
        parse_settings(data, ENV)

    text = str(caught.value) + "\n".join(caught.value.problems) + repr(caught.value)
    assert len(caught.value.problems) >= 5
    for canary in CANARIES:
        assert canary not in text


def test_render_effective_masks_every_secret_and_keeps_the_webhook_host() -> None:
    settings = parse_settings(copy.deepcopy(FULL), ENV)

    text = render_effective(settings)

    for canary in CANARIES:
        assert canary not in text
    rendered = yaml.safe_load(text)
    assert rendered["dli"]["auth"]["secret_key"] == "***"
    assert rendered["dli"]["auth"]["security_token"] == "***"
    assert rendered["sinks"][0]["url"] == "https://hooks.example.invalid/…"
    assert rendered["sinks"][0]["headers"] == {"Authorization": "***"}
    assert rendered["poll"]["interval"] == "1m"
    assert rendered["delivery"]["max_age"] == "1h30m"
    assert rendered["dli"]["retry"]["backoff"] == ["250ms", "1s"]


def test_render_effective_output_loads_back_to_the_same_non_secret_settings() -> None:
    settings = parse_settings(minimal(poll={"interval": "90s"}), {})

    again = parse_settings(yaml.safe_load(render_effective(settings)), {})

    assert again == settings


def test_secret_values_holds_every_secret_including_webhook_url_parts_and_headers() -> None:
    data = copy.deepcopy(FULL)
    data["sinks"][0]["url"] = WEBHOOK_URL + "?access_token=CANARY-SK-query-token-1"
    settings = parse_settings(data, ENV)

    values = secret_values(settings)

    assert {CANARY_AK, CANARY_SK, CANARY_TOKEN, CANARY_URL_TOKEN, CANARY_HEADER} <= values
    assert f"Bearer {CANARY_HEADER}" in values
    assert WEBHOOK_URL + "?access_token=CANARY-SK-query-token-1" in values
    assert "CANARY-SK-query-token-1" in values
    assert "etl" not in values


def test_secret_values_includes_the_iam_password() -> None:
    auth = {"type": "token", "domain_name": "acme", "username": "bot", "password": CANARY_PASSWORD}
    settings = parse_settings(minimal(dli={**minimal()["dli"], "auth": auth}), {})

    assert CANARY_PASSWORD in secret_values(settings)
    assert CANARY_PASSWORD not in render_effective(settings)


# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        (" 2m ", 120.0),
        ("10", 10.0),
        (10, 10.0),
        (0.5, 0.5),
        ("0", 0.0),
    ],
)
def test_durations_parse_to_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "", "s", "1h-5m", "ten", "inf", "nan", True, None, [1]])
def test_malformed_durations_are_rejected(text: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["-5s", "-1", -0.5])
def test_negative_durations_are_rejected(text: object) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        parse_duration(text)


@pytest.mark.parametrize("seconds", [0.0, 0.25, 1.5, 30.0, 90.0, 120.0, 5400.0, 86400.0])
def test_formatted_durations_parse_back_to_the_same_seconds(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


# --- documentation -----------------------------------------------------------------------


def test_every_field_of_every_model_has_a_description() -> None:
    from monitor.config import dli, server, sinks, state
    from monitor.config import models as config

    models = [
        value
        for module in (config, dli, server, sinks, state)
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == module.__name__
    ]
    assert len(models) >= 12
    undocumented = [
        f"{model.__name__}.{name}"
        for model in models
        for name, info in model.model_fields.items()
        if not info.description
    ]
    assert undocumented == []


def test_the_reference_table_lists_every_key_with_type_default_and_description() -> None:
    table = reference_table()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}

    for key in (
        "`dli.endpoint`",
        "`dli.auth.type`",
        "`dli.auth.secret_key_file`",
        "`dli.auth.password`",
        "`dli.retry.backoff`",
        "`queues`",
        "`poll.baseline`",
        "`server.listen`",
        "`delivery.max_age`",
        "`shutdown_timeout`",
        "`sinks[].url`",
        "`sinks[].headers`",
        "`sinks[].name`",
    ):
        assert key in rows, key
    assert "| duration | `24h` |" in rows["`delivery.max_age`"]
    assert "required" in rows["`dli.endpoint`"]
    url_rows = [line for line in table.splitlines() if line.startswith("| `sinks[].url`")]
    assert any("[webhook]" in line for line in url_rows)
    assert '"webhook" \\| "console"' in rows["`sinks[].type`"]
    assert table.count("`sinks[].name`") == 1


# --- one project or several (`dli:` as a mapping or a list) -------------------------------

HUAWEI = "https://dli.cn-north-4.myhuaweicloud.com"


def project(name: str, **changes: Any) -> dict[str, Any]:
    """One entry of a `dli:` list."""
    entry: dict[str, Any] = {
        "name": name,
        "endpoint": HUAWEI,
        "project_id": "abc123",
        "auth": {"type": "none"},
        "queues": ["etl"],
    }
    entry.update(changes)
    return entry


def test_a_single_dli_mapping_is_one_project_named_default_with_bare_queue_keys() -> None:
    settings = parse_settings(minimal(dli={**minimal()["dli"], "endpoint": HUAWEI}))
    (only,) = settings.projects
    assert (only.name, only.region, only.listed, only.path) == (
        "default",
        "cn-north-4",
        False,
        "dli",
    )
    assert only.targets == ("etl",)
    assert only.key("etl") == "etl"  # state files written before projects existed go on
    assert only.dli is settings.dli


def test_a_single_mapping_whose_endpoint_names_no_region_is_local_unless_it_says() -> None:
    assert parse_settings(minimal()).projects[0].region == "local"
    dli = {**minimal()["dli"], "region": "ap-southeast-1"}
    assert parse_settings(minimal(dli=dli)).projects[0].region == "ap-southeast-1"


def test_a_dli_list_is_one_project_per_entry_with_prefixed_keys_and_their_own_settings() -> None:
    settings = parse_settings(
        {
            "dli": [
                project("prod-bj", max_requests_per_minute=30, queues=["etl", "adhoc"]),
                project(
                    "prod-eu",
                    endpoint="https://dli.eu-west-101.myhuaweicloud.eu",
                    project_id="def456",
                    auth={"type": "aksk", "access_key": "AK2", "secret_key": CANARY_SK},
                    queues="*",
                ),
                project("lab", endpoint="http://127.0.0.1:8080", region="lab-1"),
            ]
        }
    )
    bj, eu, lab = settings.projects
    assert [p.name for p in settings.projects] == ["prod-bj", "prod-eu", "lab"]
    assert [p.region for p in settings.projects] == ["cn-north-4", "eu-west-101", "lab-1"]
    assert [p.path for p in settings.projects] == ["dli[0]", "dli[1]", "dli[2]"]
    assert [bj.key(t) for t in bj.targets] == ["prod-bj/etl", "prod-bj/adhoc"]
    assert [eu.key(t) for t in eu.targets] == ["prod-eu/*"]
    assert (bj.dli.max_requests_per_minute, eu.dli.max_requests_per_minute) == (30, 60)
    assert isinstance(eu.dli.auth, AkSkAuthSettings)
    assert lab.ref.key("etl") == "lab/etl"
    assert settings.queues is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"dli": [project("a"), project("a", queues=["x"])]},
            ["dli[1].name: duplicate project name (also dli[0])"],
        ),
        (
            {"dli": [project("default")]},
            ["dli[0].name: 'default' is the name of a single `dli:` mapping; choose another"],
        ),
        (
            {"dli": [project("Prod_1")]},
            [
                "dli[0].name: must be 1-40 lowercase letters, digits or '-', starting and ending"
                " with a letter or digit"
            ],
        ),
        (
            {"dli": [{k: v for k, v in project("a").items() if k != "name"}]},
            ["dli[0].name: field required"],
        ),
        (
            {"dli": [{k: v for k, v in project("a").items() if k != "queues"}]},
            ["dli[0].queues: field required"],
        ),
        (
            {"dli": [project("a")], "queues": ["etl"]},
            [
                "queues: not used with a `dli:` list:"
                " give each project its own queues (dli[0].queues)"
            ],
        ),
        ({"dli": minimal()["dli"]}, ["queues: field required"]),
        ({"dli": []}, ["dli: must not be empty: list at least one project"]),
        (
            {"dli": "prod", "queues": ["etl"]},
            ["dli: must be a mapping (one project) or a list of projects"],
        ),
        (
            {"dli": [project("a", endpoint="http://127.0.0.1:8080")]},
            [
                "dli[0].region: required: the endpoint does not name a region"
                " (dli.<region>.myhuaweicloud.com); say which region this project is in"
            ],
        ),
        (
            {"dli": [project("a", region="North 4")]},
            ["dli[0].region: must be lowercase letters, digits and '-', e.g. cn-north-4"],
        ),
        (
            {"dli": [project("a"), project("b", auth={"type": "aksk", "access_key": "AK"})]},
            ["dli[1].auth.secret_key: field required"],
        ),
        (
            {"dli": [project("a", endpiont=HUAWEI)]},
            ["dli[0].endpiont: unknown key (did you mean 'endpoint'?)"],
        ),
        (
            {"dli": [project("a", queues=["etl", "etl"]), project("b", page_size=0)]},
            [
                "dli[0].queues[1]: duplicate queue (also queues[0])",
                "dli[1].page_size: input should be greater than or equal to 1",
            ],
        ),
    ],
)
def test_every_problem_of_a_dli_list_is_reported_at_its_key_path(
    data: dict[str, Any], expected: list[str]
) -> None:
    assert sorted(problems_of(data)) == sorted(expected)


def test_no_secret_of_a_listed_project_appears_in_a_problem_or_the_effective_config() -> None:
    auth = {"type": "aksk", "access_key": CANARY_AK, "secret_key": CANARY_SK}
    problems = problems_of({"dli": [project("a", auth=auth, page_size="many")]})
    assert not [p for p in problems if CANARY_SK in p or CANARY_AK in p]
    settings = parse_settings({"dli": [project("a", auth=auth), project("b", auth=auth)]})
    text = render_effective(settings) + describe_projects(settings)
    assert CANARY_SK not in text and CANARY_AK not in text
    assert {CANARY_AK, CANARY_SK} <= secret_values(settings)


def test_describe_projects_names_each_project_with_region_endpoint_and_queues() -> None:
    single = describe_projects(parse_settings(minimal()))
    assert single == (
        "# 1 DLI project(s), from a single `dli:` mapping:\n"
        "#   default: region local, endpoint http://127.0.0.1:8080, project_id abc123,"
        " queues etl (state keys: etl)\n"
    )
    listed = describe_projects(
        parse_settings(
            {
                "dli": [
                    project("bj", queues=["etl", "adhoc"]),
                    project("lab", queues="*", region="lab"),
                ]
            }
        )
    )
    assert "# 2 DLI project(s), from a `dli:` list:" in listed
    assert (
        "#   bj: region cn-north-4, endpoint https://dli.cn-north-4.myhuaweicloud.com,"
        " project_id abc123, queues etl, adhoc (state keys: bj/etl, bj/adhoc)"
    ) in listed
    assert "#   lab: region lab, " in listed and "queues * (state keys: lab/*)" in listed


def test_the_reference_table_documents_both_forms_of_dli() -> None:
    rows = {line.split("|")[1].strip(): line for line in reference_table().splitlines()[2:]}
    assert "mapping, or list of mappings" in rows["`dli`"]
    assert "[list]" in rows["`dli[].name`"] and "required" in rows["`dli[].name`"]
    assert "[list]" in rows["`dli[].queues`"]
    assert "`dli.region`" in rows and "`dli[].endpoint`" not in rows  # shared keys once
    assert "required" not in rows["`queues`"].split("|")[3]


def test_the_effective_config_of_a_dli_list_loads_back_to_the_same_settings() -> None:
    settings = parse_settings({"dli": [project("a"), project("b", queues="*")]})
    again = parse_settings(yaml.safe_load(render_effective(settings)))
    assert again.projects == settings.projects
