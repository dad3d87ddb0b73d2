"""The value types of config fields: annotated types carrying their validators and their name.

Each type here is an `Annotated[...]` that pydantic validates (durations, secrets, URLs, names,
the queue list) and that carries a `Kind` marker naming it in the reference table. Validators
never put the offending value in their message, so a secret cannot reach an error.

What does not live here: the models that use these types (`monitor.config.models`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    SecretStr,
    ValidationError,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from monitor.config.durations import parse_duration

Loc = tuple[str | int, ...]
"""A key path in the config tree, e.g. `("sinks", 0, "url")`."""


@dataclass(frozen=True, slots=True)
class Kind:
    """Annotation marker: the type's name in the reference table (and durations' rendering)."""

    name: str


def problem(loc: Loc, message: str) -> InitErrorDetails:
    """A validation error at `loc` below the value being validated."""
    return {"type": PydanticCustomError("config", message), "loc": loc, "input": None}


def reraisable(error: Any) -> InitErrorDetails:
    """A reported validation error turned back into one that can be raised again."""
    detail: InitErrorDetails = {"type": error["type"], "loc": error["loc"], "input": None}
    if "ctx" in error:
        detail["ctx"] = error["ctx"]
    if error["type"] == "config":
        detail["type"] = PydanticCustomError("config", error["msg"])
    return detail


Duration = Annotated[float, BeforeValidator(parse_duration), Kind("duration")]
"""Seconds; written as `30s`, `5m`, `1h30m`, `250ms` or a number."""
PositiveDuration = Annotated[Duration, Field(gt=0)]


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


Secret = Annotated[SecretStr, AfterValidator(_not_blank), Kind("secret")]
OptionalSecret = Annotated[Secret | None, BeforeValidator(_empty_to_none)]
Text = Annotated[str, Field(min_length=1)]
HttpUrl = Annotated[str, AfterValidator(_endpoint), Kind("URL")]
SecretUrl = Annotated[SecretStr, AfterValidator(_secret_url), Kind("secret URL")]
SecretFile = Annotated[Path | None, Kind("path")]
ProjectId = Annotated[str, _matches(r"[A-Za-z0-9]{1,64}", "must be 1-64 letters or digits")]
SinkName = Annotated[
    str,
    _matches(
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
        "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
    ),
]
HeaderName = Annotated[
    str, _matches(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", "not a valid HTTP header name")
]

ALL_QUEUES: Literal["*"] = "*"
_QUEUE = re.compile(r"(?!_)(?![0-9]+$)[A-Za-z0-9_]{1,128}")


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
            problems.append(problem((index,), "not a queue name (letters, digits and '_')"))
        elif name in seen:
            problems.append(problem((index,), f"duplicate queue (also queues[{seen[name]}])"))
        else:
            seen[name] = index
    if problems:
        raise ValidationError.from_exception_data("queues", problems)
    return list(value)


Queues = Annotated[
    list[str] | Literal["*"], PlainValidator(_queues), Kind('list of queue names, or "*"')
]


def _optional_queues(value: object) -> list[str] | Literal["*"] | None:
    """`_queues`, or None when the key is left out (a `dli:` list names queues per project)."""
    return None if value is None else _queues(value)


OptionalQueues = Annotated[
    list[str] | Literal["*"] | None,
    PlainValidator(_optional_queues),
    Kind('list of queue names, or "*"'),
]
