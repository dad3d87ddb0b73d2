"""Walking the types of the settings models: what lies under an annotation or a key path.

Error reporting uses these to drop pydantic's union tags from key paths and to suggest a close
key name; the reference table uses them to recurse into nested models and unions.

What does not live here: the models themselves (`monitor.config.models`).
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Union

from pydantic import BaseModel

from monitor.config.fields import Kind


def unwrap(node: object) -> object:
    """The type inside `Annotated[...]` and `X | None`."""
    while True:
        if typing.get_origin(node) is Annotated:
            node = typing.get_args(node)[0]
        elif is_union(node) and len(args := typing.get_args(node)) == 2 and type(None) in args:
            node = args[0] if args[1] is type(None) else args[1]
        else:
            return node


def is_union(node: object) -> bool:
    """Whether `node` is a `Union[...]` or an `X | Y`."""
    return typing.get_origin(node) in (Union, types.UnionType)


def is_model(node: object) -> typing.TypeGuard[type[BaseModel]]:
    """Whether `node` is a pydantic model class."""
    return isinstance(node, type) and issubclass(node, BaseModel)


def as_model(node: object) -> type[BaseModel] | None:
    """The model a value of type `node` is (the mapping member of a one-or-many union)."""
    node = unwrap(node)
    if is_model(node):
        return node
    if is_union(node):
        return next((arg for arg in typing.get_args(node) if is_model(arg)), None)
    return None


def list_member(node: object) -> type[BaseModel] | None:
    """The model of the list member of a one-or-many union such as `dli:` (else None)."""
    node = unwrap(node)
    if not is_union(node):
        return None
    for arg in typing.get_args(node):
        if typing.get_origin(arg) is list and is_model(inner := unwrap(typing.get_args(arg)[0])):
            return inner
    return None


def child(node: object, part: str | int) -> object:
    """The type of key or index `part` below a value of type `node` (None when unknown)."""
    node = unwrap(node)
    if is_union(node) and union_tags(node) is None and (many := list_member(node)) is not None:
        return list_member_child(node, many, part)
    if is_model(node) and isinstance(part, str):
        info = node.model_fields.get(part)
        return info.annotation if info else None
    if typing.get_origin(node) is list and isinstance(part, int):
        return typing.get_args(node)[0]
    if typing.get_origin(node) is dict:
        return typing.get_args(node)[1]
    return None


def union_tags(node: object) -> dict[str, type[BaseModel]] | None:
    """`{tag: model}` when `node` is a union of models told apart by a `type` literal."""
    node = unwrap(node)
    if not is_union(node):
        return None
    tags: dict[str, type[BaseModel]] = {}
    for member in typing.get_args(node):
        if not is_model(member) or "type" not in member.model_fields:
            return None
        for tag in typing.get_args(member.model_fields["type"].annotation):
            tags[str(tag)] = member
    return tags


def is_duration(annotation: object, metadata: list[Any]) -> bool:
    """Whether a field of this annotation (and field metadata) holds durations."""
    if Kind("duration") in metadata:
        return True
    if typing.get_origin(annotation) is Annotated:
        args = typing.get_args(annotation)
        return is_duration(args[0], list(annotation.__metadata__))  # type: ignore[attr-defined]
    return any(is_duration(arg, []) for arg in typing.get_args(annotation))


def list_member_child(node: object, many: type[BaseModel], part: str | int) -> object:
    """`child` of a one-or-many union: an index goes into the list, a key into the mapping."""
    if isinstance(part, int):
        return many
    return child(as_model(node), part)
