"""The configuration file: its models, how it is loaded, validated, shown and documented.

A YAML file is read, `${ENV}` references are resolved and `*_file` secrets are read while the
raw tree is walked (so every problem keeps its key path), and the result is validated by the
pydantic models below. Every problem is collected and raised at once as a `ConfigError` whose
lines read `key.path: message` and never contain a secret. `render_effective` shows the result
with secrets masked; `reference_table` documents every key from the field descriptions.

What does not live here: choosing the config path (the CLI), and turning settings into objects
(the composition root, `monitor.app`).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import types
import typing
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import parse_qsl, urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from monitor.redact import MASK, redact_url, scrub

Loc = tuple[str | int, ...]

FILE_BACKED = ("access_key", "secret_key", "security_token", "password", "url")
"""Keys that may instead be given as `<key>_file`: a path to a file holding the value."""


class ConfigError(Exception):
    """The configuration is invalid; `problems` lists every problem as `key.path: message`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


# --- value types ---------------------------------------------------------------------------

_PART = r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)"
_DURATION = re.compile(rf"(-?)((?:{_PART})+)")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds from `30s`, `5m`, `1h30m`, `250ms` or a plain number of seconds."""
    hint = "not a duration: use seconds or a value such as 30s, 5m, 1h30m, 250ms"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(hint)
    if not isinstance(value, str):
        seconds = float(value)
    elif _NUMBER.fullmatch(value.strip()):
        seconds = float(value.strip())
    elif match := _DURATION.fullmatch(value.strip()):
        parts = re.findall(_PART, match.group(2))
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
        seconds = -seconds if match.group(1) else seconds
    else:
        raise ValueError(hint)
    if not math.isfinite(seconds):
        raise ValueError(hint)
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest duration string that `parse_duration` reads back as `seconds`."""
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms" if millis < 1000 else f"{millis / 1000:.3f}".rstrip("0") + "s"
    hours, rest = divmod(millis // 1000, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"


@dataclass(frozen=True, slots=True)
class _Kind:
    """Annotation marker: the type's name in the reference table (and durations' rendering)."""

    name: str


Duration = Annotated[float, BeforeValidator(parse_duration), _Kind("duration")]
"""Seconds; written as `30s`, `5m`, `1h30m`, `250ms` or a number."""
_PositiveDuration = Annotated[Duration, Field(gt=0)]


def _not_blank(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError("must not be empty")
    return value


def _http_url(text: str) -> str:
    """`text` when it is an absolute http(s) URL with a host, else ValueError (value not shown)."""
    try:
        parts = urlsplit(text)
        _ = parts.port
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return text


def _secret_url(value: SecretStr) -> SecretStr:
    _http_url(value.get_secret_value().strip())
    return SecretStr(value.get_secret_value().strip())


def _endpoint(value: str) -> str:
    if urlsplit(_http_url(value.strip())).query:
        raise ValueError("must not have a query string")
    return value.strip().rstrip("/")


def _matches(pattern: str, message: str) -> AfterValidator:
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


def _empty_to_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


_Secret = Annotated[SecretStr, AfterValidator(_not_blank), _Kind("secret")]
_OptionalSecret = Annotated[_Secret | None, BeforeValidator(_empty_to_none)]
_Text = Annotated[str, Field(min_length=1)]
_HttpUrl = Annotated[str, AfterValidator(_endpoint), _Kind("URL")]
_SecretUrl = Annotated[SecretStr, AfterValidator(_secret_url), _Kind("secret URL")]
_SecretFile = Annotated[Path | None, _Kind("path")]
_ProjectId = Annotated[str, _matches(r"[A-Za-z0-9]{1,64}", "must be 1-64 letters or digits")]
_SinkName = Annotated[
    str,
    _matches(
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
        "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
    ),
]
_HeaderName = Annotated[
    str, _matches(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", "not a valid HTTP header name")
]

ALL_QUEUES: Literal["*"] = "*"
_QUEUE = re.compile(r"(?!_)(?![0-9]+$)[A-Za-z0-9_]{1,128}")


def _problem(loc: Loc, message: str) -> InitErrorDetails:
    """A validation error at `loc` below the value being validated."""
    return {"type": PydanticCustomError("config", message), "loc": loc, "input": None}


def _queues(value: object) -> list[str] | Literal["*"]:
    """A non-empty list of unique, valid queue names, or `*`."""
    if value == ALL_QUEUES:
        return ALL_QUEUES
    if not isinstance(value, list):
        raise ValueError('must be a list of queue names, or "*" for every queue')
    if not value:
        raise ValueError('must not be empty: list queue names, or use "*" for every queue')
    problems: list[InitErrorDetails] = []
    seen: dict[str, int] = {}
    for index, name in enumerate(value):
        if not isinstance(name, str) or not _QUEUE.fullmatch(name):
            problems.append(_problem((index,), "not a queue name (letters, digits and '_')"))
        elif name in seen:
            problems.append(_problem((index,), f"duplicate queue (also queues[{seen[name]}])"))
        else:
            seen[name] = index
    if problems:
        raise ValidationError.from_exception_data("queues", problems)
    return list(value)


_Queues = Annotated[
    list[str] | Literal["*"], PlainValidator(_queues), _Kind('list of queue names, or "*"')
]


# --- models ------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AkSkAuthSettings(_Model):
    """AK/SK request signing (recommended by Huawei Cloud)."""

    type: Literal["aksk"] = Field(description="Sign every request with an access key pair.")
    access_key: _Secret = Field(description="Access key id (AK).")
    access_key_file: _SecretFile = Field(default=None, description="File holding the AK instead.")
    secret_key: _Secret = Field(description="Secret access key (SK).")
    secret_key_file: _SecretFile = Field(default=None, description="File holding the SK instead.")
    security_token: _OptionalSecret = Field(
        default=None, description="Security token of temporary credentials; empty = none."
    )
    security_token_file: _SecretFile = Field(
        default=None, description="File holding the security token instead."
    )


class TokenAuthSettings(_Model):
    """An IAM user token, fetched with a password and refreshed before it expires."""

    type: Literal["token"] = Field(description="Authenticate with an IAM token.")
    iam_endpoint: _HttpUrl = Field(
        default="https://iam.myhuaweicloud.com", description="IAM endpoint that issues tokens."
    )
    domain_name: _Text = Field(description="Account (domain) name the IAM user belongs to.")
    username: _Text = Field(description="IAM user name.")
    password: _Secret = Field(description="IAM user password.")
    password_file: _SecretFile = Field(
        default=None, description="File holding the password instead."
    )


class NoAuthSettings(_Model):
    """No authentication (the simulator, or a trusted proxy that signs for us)."""

    type: Literal["none"] = Field(description="Send requests unauthenticated.")


AuthSettings = Annotated[
    AkSkAuthSettings | TokenAuthSettings | NoAuthSettings, Field(discriminator="type")
]


class RetrySettings(_Model):
    """How a failed DLI request is retried within one cycle."""

    attempts: int = Field(default=4, ge=1, description="Tries per request, the first included.")
    backoff: list[Duration] = Field(
        default=[1.0, 2.0, 4.0], min_length=1, description="Waits between tries; the last repeats."
    )


class DliSettings(_Model):
    """Where DLI is and how to talk to it."""

    endpoint: _HttpUrl = Field(
        description="DLI endpoint, e.g. https://dli.cn-north-4.myhuaweicloud.com (http: simulator)."
    )
    project_id: _ProjectId = Field(description="Project id (1-64 letters/digits) in API paths.")
    auth: AuthSettings = Field(description="How requests are authenticated.")
    page_size: int = Field(
        default=100, ge=1, le=1000, description="Jobs per listing page (1-1000)."
    )
    request_timeout: _PositiveDuration = Field(
        default=10.0, description="Timeout of one HTTP request."
    )
    max_requests_per_minute: int = Field(
        default=60, ge=0, description="Request budget against DLI; 0 = unlimited."
    )
    retry: RetrySettings = Field(default_factory=RetrySettings, description="Request retries.")
    max_concurrency: int = Field(
        default=4,
        ge=1,
        description="Parallel state-confirmation calls for jobs that left a listing.",
    )


class PollSettings(_Model):
    """When and how the queues are polled."""

    interval: Duration = Field(default=30.0, ge=1, description="Time between poll cycles (>= 1s).")
    baseline: Literal["silent", "notify"] = Field(
        default="silent",
        description="First poll of a target: record jobs silently, or also report failed ones.",
    )
    listing_attempts: int = Field(
        default=3, ge=1, description="Tries for a consistent listing of a target within one cycle."
    )


class StateSettings(_Model):
    """Where the snapshot and the outbox are kept."""

    path: Path = Field(
        default=Path("./dli-monitor.db"),
        description="SQLite file (relative to the working directory; `:memory:` for tests).",
    )


class ServerSettings(_Model):
    """The HTTP server for /metrics, /healthz and /readyz."""

    listen: str = Field(
        default="0.0.0.0:9108", description="HOST:PORT to listen on ([::]:9108 for IPv6)."
    )
    enabled: bool = Field(default=True, description="Serve metrics and probes at all.")

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        _split_listen(value)
        return value

    @property
    def host(self) -> str:
        """The address to bind, without IPv6 brackets."""
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port to bind; 0 picks a free one."""
        return _split_listen(self.listen)[1]


def _split_listen(value: str) -> tuple[str, int]:
    host, colon, port = value.strip().rpartition(":")
    if not colon or not host or not (port.isascii() and port.isdigit()):
        raise ValueError("must be HOST:PORT, e.g. 0.0.0.0:9108 or [::]:9108")
    if host.startswith("[") and host.endswith("]") and len(host) > 2:
        host = host[1:-1]
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError("an IPv6 address goes in brackets, e.g. [::]:9108")
    if int(port) > 65535:
        raise ValueError("port must be 0-65535")
    return host, int(port)


class DeliverySettings(_Model):
    """How notifications are delivered from the outbox to the sinks."""

    backoff: list[Duration] = Field(
        default=[5.0, 30.0, 120.0, 600.0],
        min_length=1,
        description="Waits between delivery attempts; the last repeats.",
    )
    max_age: _PositiveDuration = Field(
        default=86400.0,
        description="An undelivered notification older than this is recorded failed.",
    )
    timeout: _PositiveDuration = Field(default=10.0, description="Timeout of one delivery attempt.")
    batch_size: int = Field(default=100, ge=1, description="Outbox rows handled per drain.")


class WebhookSinkSettings(_Model):
    """A generic JSON webhook: one POST per notification."""

    name: _SinkName = Field(description="Unique sink name (used in metrics and logs).")
    type: Literal["webhook"] = Field(description="Sink kind.")
    url: _SecretUrl = Field(description="http(s) URL to POST to; a secret (may hold a token).")
    url_file: _SecretFile = Field(default=None, description="File holding the URL instead.")
    headers: dict[_HeaderName, _Secret] = Field(
        default_factory=dict, description="Extra request headers; values are secrets."
    )
    timeout: _PositiveDuration | None = Field(
        default=None, description="Per-attempt timeout; default delivery.timeout."
    )


class ConsoleSinkSettings(_Model):
    """Writes each notification to standard output (for trials and the demo)."""

    name: _SinkName = Field(description="Unique sink name (used in metrics and logs).")
    type: Literal["console"] = Field(description="Sink kind.")


SinkSettings = Annotated[WebhookSinkSettings | ConsoleSinkSettings, Field(discriminator="type")]


class Settings(_Model):
    """The whole configuration file."""

    dli: DliSettings = Field(description="The DLI service to poll.")
    queues: _Queues = Field(description='_Queues to watch: a list of names, or "*" for all jobs.')
    poll: PollSettings = Field(default_factory=PollSettings, description="Polling.")
    state: StateSettings = Field(default_factory=StateSettings, description="Persistence.")
    server: ServerSettings = Field(default_factory=ServerSettings, description="HTTP server.")
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings, description="Notification delivery."
    )
    shutdown_timeout: Duration = Field(
        default=20.0, description="How long shutdown waits for the running cycle and deliveries."
    )
    sinks: list[SinkSettings] = Field(
        default_factory=list, description="Where notifications go; empty = metrics only."
    )

    @field_validator("sinks", mode="wrap")
    @classmethod
    def _unique_names(cls, value: object, handler: ValidatorFunctionWrapHandler) -> object:
        problems: list[InitErrorDetails] = []
        first: dict[object, int] = {}
        for index, item in enumerate(value if isinstance(value, list) else []):
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and name in first:
                problems.append(
                    _problem((index, "name"), f"duplicate sink name (also sinks[{first[name]}])")
                )
            elif isinstance(name, str):
                first[name] = index
        try:
            result = handler(value)
        except ValidationError as exc:
            details = [_detail(e) for e in exc.errors()]
            raise ValidationError.from_exception_data("sinks", details + problems) from None
        if problems:
            raise ValidationError.from_exception_data("sinks", problems)
        return result


def _detail(error: Any) -> InitErrorDetails:
    """A reported error turned back into one that can be raised again."""
    detail: InitErrorDetails = {"type": error["type"], "loc": error["loc"], "input": None}
    if "ctx" in error:
        detail["ctx"] = error["ctx"]
    if error["type"] == "config":
        detail["type"] = PydanticCustomError("config", error["msg"])
    return detail


# --- loading -----------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key given twice in one mapping."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        if isinstance(key, Hashable):
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, resolve and validate the YAML config file at `path`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read file ({_reason(exc)})"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        raise ConfigError([f"{where}: {exc.problem or exc.context or 'invalid YAML'}"]) from None
    except yaml.YAMLError:
        raise ConfigError(["invalid YAML"]) from None
    return parse_settings(data, environ, base_dir=path.absolute().parent)


def parse_settings(
    data: object, environ: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Settings:
    """Resolve `${ENV}` and `*_file` in an already parsed config tree, then validate it.

    `environ` defaults to `os.environ`; relative `*_file` paths are taken from `base_dir`
    (default: the working directory). Raises `ConfigError` listing every problem.
    """
    if not isinstance(data, dict):
        kind = "nothing" if data is None else type(data).__name__
        raise ConfigError([f"(top level): must be a mapping of settings, got {kind}"])
    prep = _Prepare(os.environ if environ is None else environ, base_dir or Path.cwd())
    resolved = prep.walk(data, ())
    problems = list(prep.problems)
    try:
        settings = Settings.model_validate(resolved)
    except ValidationError as exc:
        problems += [p for p in _convert(exc) if not any(_under(p[0], s) for s in prep.skip)]
    if problems:
        lines = [f"{_format_loc(loc)}: {message}" for loc, message in problems]
        raise ConfigError([scrub(line, prep.secrets) for line in dict.fromkeys(lines)])
    return settings


_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_REFERENCE_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


@dataclass
class _Prepare:
    """One walk over the raw tree: `${ENV}` resolution and `*_file` reading, with problems."""

    environ: Mapping[str, str]
    base_dir: Path
    problems: list[tuple[Loc, str]] = field(default_factory=list)
    skip: list[Loc] = field(default_factory=list)
    """Paths already reported; validation errors at or below them would only repeat them."""
    secrets: set[str] = field(default_factory=set)

    def walk(self, node: object, loc: Loc) -> object:
        """A copy of `node` with references resolved and files read."""
        if isinstance(node, str):
            return self._interpolate(node, loc)
        if isinstance(node, list):
            return [self.walk(item, (*loc, index)) for index, item in enumerate(node)]
        if isinstance(node, dict):
            mapping = {key: self.walk(value, (*loc, str(key))) for key, value in node.items()}
            for key, value in mapping.items():
                if (key in FILE_BACKED or loc[-1:] == ("headers",)) and isinstance(value, str):
                    self.secrets.add(value)
            for key in FILE_BACKED:
                if mapping.get(f"{key}_file") is not None:
                    self._read_file(mapping, key, loc)
            return mapping
        return node

    def _report(self, loc: Loc, message: str) -> None:
        self.problems.append((loc, message))
        self.skip.append(loc)

    def _interpolate(self, text: str, loc: Loc) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group() == "$${":
                return "${"
            body = _REFERENCE_BODY.fullmatch(match.group(1) or "")
            if match.group(1) is None or body is None:
                self._report(loc, "invalid reference: use ${NAME} or ${NAME:-default}")
                return ""
            name, default = body.group(1), body.group(2)
            value = self.environ.get(name)
            if default is not None and not value:
                return default
            if value is None:
                self._report(loc, f"environment variable {name} is not set")
                return ""
            return value

        return _REFERENCE.sub(replace, text)

    def _read_file(self, mapping: dict[Any, Any], key: str, loc: Loc) -> None:
        file_key = f"{key}_file"
        raw = mapping[file_key]
        if (*loc, file_key) in self.skip:  # its ${ENV} reference failed: already reported
            self.skip.append((*loc, key))
        elif mapping.get(key) is not None:
            self._report((*loc, file_key), f"set either {key} or {file_key}, not both")
        elif not isinstance(raw, str) or not raw.strip():
            self._report((*loc, file_key), "must be a file path")
            self.skip.append((*loc, key))
        else:
            path = self.base_dir / raw.strip()
            mapping[file_key] = str(path)
            try:
                mapping[key] = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                self._report((*loc, file_key), f"cannot read file: {path} ({_reason(exc)})")
                self.skip.append((*loc, key))
            else:
                self.secrets.add(mapping[key])


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__


def _under(loc: Loc, prefix: Loc) -> bool:
    return loc[: len(prefix)] == prefix


def _format_loc(loc: Loc) -> str:
    """`("sinks", 0, "url")` -> `sinks[0].url`."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return text.lstrip(".") or "(top level)"


def _convert(exc: ValidationError) -> Iterator[tuple[Loc, str]]:
    """Pydantic errors as (key path, message), without tag segments and input values."""
    for error in exc.errors(include_url=False, include_input=False):
        loc, parent = _strip_tags(tuple(p for p in error["loc"] if p != "[key]"))
        kind, message = error["type"], error["msg"]
        if kind in ("missing", "union_tag_not_found"):
            loc, message = (loc if kind == "missing" else (*loc, "type")), "field required"
        elif kind == "union_tag_invalid":
            loc = (*loc, "type")
            message = f"must be one of {error.get('ctx', {}).get('expected_tags', '')}"
        elif kind == "extra_forbidden":
            message = "unknown key" + _did_you_mean(loc[-1], parent)
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            message = "must be a mapping (key: value)"
        elif kind == "list_type":
            message = "must be a list"
        else:
            message = message.removeprefix("Value error, ")
            message = message[:1].lower() + message[1:]
        yield loc, message


def _did_you_mean(key: str | int, parent: object) -> str:
    parent = _unwrap(parent)
    names = list(parent.model_fields) if _is_model(parent) else []
    close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _strip_tags(loc: Loc) -> tuple[Loc, object]:
    """Drop the tag pydantic adds after a discriminated union; also return the last parent."""
    out: list[str | int] = []
    node: object = Settings
    parent: object = None
    for part in loc:
        tags = _union_tags(node)
        if tags is not None and part in tags:
            node = tags[str(part)]
            continue
        out.append(part)
        parent, node = node, _child(node, part)
    return tuple(out), parent


def _unwrap(node: object) -> object:
    """The type inside `Annotated[...]` and `X | None`."""
    while True:
        if typing.get_origin(node) is Annotated:
            node = typing.get_args(node)[0]
        elif _is_union(node) and len(args := typing.get_args(node)) == 2 and type(None) in args:
            node = args[0] if args[1] is type(None) else args[1]
        else:
            return node


def _is_union(node: object) -> bool:
    return typing.get_origin(node) in (Union, types.UnionType)


def _is_model(node: object) -> typing.TypeGuard[type[BaseModel]]:
    return isinstance(node, type) and issubclass(node, BaseModel)


def _child(node: object, part: str | int) -> object:
    node = _unwrap(node)
    if _is_model(node) and isinstance(part, str):
        info = node.model_fields.get(part)
        return info.annotation if info else None
    if typing.get_origin(node) is list and isinstance(part, int):
        return typing.get_args(node)[0]
    if typing.get_origin(node) is dict:
        return typing.get_args(node)[1]
    return None


def _union_tags(node: object) -> dict[str, type[BaseModel]] | None:
    """`{tag: model}` when `node` is a union of models told apart by a `type` literal."""
    node = _unwrap(node)
    if not _is_union(node):
        return None
    tags: dict[str, type[BaseModel]] = {}
    for member in typing.get_args(node):
        if not _is_model(member) or "type" not in member.model_fields:
            return None
        for tag in typing.get_args(member.model_fields["type"].annotation):
            tags[str(tag)] = member
    return tags


# --- showing -----------------------------------------------------------------------------


def _is_duration(annotation: object, metadata: list[Any]) -> bool:
    if _Kind("duration") in metadata:
        return True
    if typing.get_origin(annotation) is Annotated:
        args = typing.get_args(annotation)
        return _is_duration(args[0], list(annotation.__metadata__))  # type: ignore[attr-defined]
    return any(_is_duration(arg, []) for arg in typing.get_args(annotation))


def _plain(value: object, duration: bool) -> object:
    """A YAML-ready copy of a settings value: secrets masked, durations as `30s`."""
    if isinstance(value, BaseModel):
        return _plain_model(value)
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, list):
        return [_plain(item, duration) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item, duration) for key, item in value.items()}
    if isinstance(value, Path):
        return str(value)
    if duration and isinstance(value, float):
        return format_duration(value)
    return value


def _plain_model(model: BaseModel) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(model, WebhookSinkSettings) and name == "url":
            out[name] = redact_url(model.url.get_secret_value())
        else:
            out[name] = _plain(value, _is_duration(info.annotation, info.metadata))
    return out


def render_effective(settings: Settings) -> str:
    """The settings as YAML with defaults filled in and every secret masked."""
    return yaml.safe_dump(_plain_model(settings), sort_keys=False, allow_unicode=True)


def secret_values(settings: Settings) -> set[str]:
    """Every secret string in the settings (and the token parts of webhook URLs), for scrubbing."""
    found: set[str] = set()

    def visit(value: object) -> None:
        if isinstance(value, BaseModel):
            for name in type(value).model_fields:
                visit(getattr(value, name))
        elif isinstance(value, SecretStr) and value.get_secret_value():
            found.add(value.get_secret_value())
        elif isinstance(value, list | dict):
            for item in value.values() if isinstance(value, dict) else value:
                visit(item)

    visit(settings)
    for sink in settings.sinks:
        if isinstance(sink, WebhookSinkSettings):
            parts = urlsplit(sink.url.get_secret_value())
            found.update(v for _, v in parse_qsl(parts.query) if len(v) >= 8)
            found.update(s for s in parts.path.split("/") if len(s) >= 16)
            for header in sink.headers.values():  # "Bearer <token>": the token alone, too
                found.update(w for w in header.get_secret_value().split()[1:] if len(w) >= 8)
    return found


# --- documenting -------------------------------------------------------------------------


def _type_name(annotation: object, metadata: list[Any]) -> str:
    for item in metadata:
        if isinstance(item, _Kind):
            return item.name
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0], list(annotation.__metadata__))  # type: ignore[attr-defined]
    if origin is Literal:
        return " | ".join(f'"{arg}"' for arg in args)
    if _union_tags(annotation):
        return "mapping"
    if _is_union(annotation):
        names = [_type_name(arg, []) for arg in args if arg is not type(None)]
        return " | ".join(names) + (" (optional)" if type(None) in args else "")
    if origin is list:
        return f"list of {_type_name(args[0], [])}"
    if origin is dict:
        return f"mapping of {_type_name(args[0], [])} to {_type_name(args[1], [])}"
    if _is_model(annotation):
        return "mapping"
    simple = {str: "string", int: "integer", bool: "boolean", float: "number", Path: "path"}
    return simple.get(annotation, str(annotation)) if isinstance(annotation, type) else "value"


def _default_text(info: Any) -> str:
    if info.is_required():
        return "required"
    default = info.get_default(call_default_factory=True)
    if default is None or isinstance(default, BaseModel):
        return ""
    plain = _plain(default, _is_duration(info.annotation, info.metadata))
    if isinstance(plain, bool):
        return f"`{str(plain).lower()}`"
    if isinstance(plain, list):
        return "`[" + ", ".join(str(item) for item in plain) + "]`"
    if isinstance(plain, dict):
        return "`{}`" if not plain else f"`{plain}`"
    return f"`{plain}`"


def _rows(
    model: type[BaseModel], prefix: str, only: str = "", skip: frozenset[str] = frozenset()
) -> Iterator[list[str]]:
    shared = set(skip)
    for name, info in model.model_fields.items():
        if name in shared:
            continue
        path = prefix + name
        description = (f"[{only}] " if only else "") + (info.description or "")
        yield [path, _type_name(info.annotation, info.metadata), _default_text(info), description]
        inner = _unwrap(info.annotation)
        if typing.get_origin(inner) is list:
            inner, path = _unwrap(typing.get_args(inner)[0]), path + "[]"
        if _is_model(inner):
            yield from _rows(inner, path + ".")
        elif (tags := _union_tags(inner)) is not None:
            yield from _union_rows(tags, path + ".")


def _union_rows(tags: dict[str, type[BaseModel]], prefix: str) -> Iterator[list[str]]:
    """Rows for a union: one `type` row, shared keys once, the others marked with their tag."""
    docs = {tag: (model.__doc__ or "").strip().rstrip(".") for tag, model in tags.items()}
    kinds = "; ".join(f"`{tag}`: {doc}" for tag, doc in docs.items())
    yield [prefix + "type", " | ".join(f'"{tag}"' for tag in tags), "required", kinds]
    shared = frozenset.intersection(*(frozenset(m.model_fields) for m in tags.values()))
    first = next(iter(tags.values()))
    yield from _rows(first, prefix, skip=frozenset(first.model_fields) - shared | {"type"})
    for tag, member in tags.items():
        yield from _rows(member, prefix, only=tag, skip=shared)


def reference_table() -> str:
    """A Markdown table of every config key: path, type, default and description."""
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for row in _rows(Settings, ""):
        cells = [cell.replace("|", "\\|") for cell in row]
        lines.append(f"| `{cells[0]}` | {cells[1]} | {cells[2]} | {cells[3]} |")
    return "\n".join(lines) + "\n"
