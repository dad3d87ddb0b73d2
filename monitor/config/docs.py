"""Showing and documenting settings: the effective config, its secrets, the reference table.

`render_effective` shows loaded settings as YAML with defaults filled in and secrets masked;
`secret_values` lists every secret so logs can scrub them; `reference_table` documents every
key (path, type, default, description) from the models' field descriptions, for
docs/configuration.md.

What does not live here: loading and validating (`monitor.config.load`).
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import yaml
from pydantic import BaseModel, SecretStr

from monitor.config.durations import format_duration
from monitor.config.fields import Kind
from monitor.config.models import Settings
from monitor.config.schema import (
    as_model,
    is_duration,
    is_model,
    is_union,
    list_member,
    union_tags,
    unwrap,
)
from monitor.config.sinks import WebhookSinkSettings
from monitor.redact import MASK, redact_url

# --- showing -----------------------------------------------------------------------------


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
        key = info.alias or name  # `continue` is a Python keyword: the field is `continue_`
        if isinstance(model, WebhookSinkSettings) and name == "url":
            out[key] = redact_url(model.url.get_secret_value())
        else:
            out[key] = _plain(value, is_duration(info.annotation, info.metadata))
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


def describe_projects(settings: Settings) -> str:
    """What `check-config` says about the DLI projects: name, region, endpoint, id, queues."""
    projects = settings.projects
    form = "a `dli:` list" if projects[0].listed else "a single `dli:` mapping"
    lines = [f"# {len(projects)} DLI project(s), from {form}:"]
    for project in projects:
        keys = ", ".join(project.key(target) for target in project.targets)
        lines.append(
            f"#   {project.name}: region {project.region},"
            f" endpoint {redact_url(project.dli.endpoint)},"
            f" project_id {project.dli.project_id},"
            f" queues {', '.join(project.targets)} (state keys: {keys})"
        )
    return "\n".join(lines) + "\n"


# --- documenting -------------------------------------------------------------------------


def _type_name(annotation: object, metadata: list[Any]) -> str:
    for item in metadata:
        if isinstance(item, Kind):
            return item.name
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0], list(annotation.__metadata__))  # type: ignore[attr-defined]
    if origin is Literal:
        return " | ".join(f'"{arg}"' for arg in args)
    if union_tags(annotation):
        return "mapping"
    if is_union(annotation):
        names = [_type_name(arg, []) for arg in args if arg is not type(None)]
        return " | ".join(names) + (" (optional)" if type(None) in args else "")
    if origin is list:
        return f"list of {_type_name(args[0], [])}"
    if origin is dict:
        return f"mapping of {_type_name(args[0], [])} to {_type_name(args[1], [])}"
    if is_model(annotation):
        return "mapping"
    simple = {str: "string", int: "integer", bool: "boolean", float: "number", Path: "path"}
    return simple.get(annotation, str(annotation)) if isinstance(annotation, type) else "value"


def _default_text(info: Any) -> str:
    if info.is_required():
        return "required"
    default = info.get_default(call_default_factory=True)
    if default is None or isinstance(default, BaseModel):
        return ""
    plain = _plain(default, is_duration(info.annotation, info.metadata))
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
        path = prefix + (info.alias or name)
        description = (f"[{only}] " if only else "") + (info.description or "")
        yield [path, _type_name(info.annotation, info.metadata), _default_text(info), description]
        inner = unwrap(info.annotation)
        if typing.get_origin(inner) is list:
            inner, path = unwrap(typing.get_args(inner)[0]), path + "[]"
        if is_model(inner):
            yield from _rows(inner, path + ".")
        elif (tags := union_tags(inner)) is not None:
            yield from _union_rows(tags, path + ".")
        elif (one := as_model(inner)) is not None and (many := list_member(inner)) is not None:
            yield from _rows(one, path + ".")
            yield from _rows(many, path + "[].", only="list", skip=frozenset(one.model_fields))


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
