"""Configuration problems: `ConfigError`, and pydantic's errors turned into `key.path: message`.

A problem names the key as the user wrote it (`sinks[0].url`, without the tags pydantic adds
for discriminated unions) and never shows the offending value, so no secret reaches a message.

What does not live here: finding problems while reading the file (`monitor.config.load`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from pydantic import ValidationError

from monitor.config.fields import Loc
from monitor.config.models import Settings
from monitor.config.schema import as_model, child, union_tags


class ConfigError(Exception):
    """The configuration is invalid; `problems` lists every problem as `key.path: message`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


def format_loc(loc: Loc) -> str:
    """`("sinks", 0, "url")` -> `sinks[0].url`."""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return text.lstrip(".") or "(top level)"


def convert(exc: ValidationError) -> Iterator[tuple[Loc, str]]:
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
    model = as_model(parent)
    names = list(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _strip_tags(loc: Loc) -> tuple[Loc, object]:
    """Drop the tag pydantic adds after a discriminated union; also return the last parent."""
    out: list[str | int] = []
    node: object = Settings
    parent: object = None
    for part in loc:
        tags = union_tags(node)
        if tags is not None and part in tags:
            node = tags[str(part)]
            continue
        out.append(part)
        parent, node = node, child(node, part)
    return tuple(out), parent
