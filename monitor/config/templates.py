"""Message templates in the config: Jinja2 overrides of a chat sink's title and body.

`TemplateSettings` is a chat sink's `templates:` key: a default `title`/`body` for single
events, per event kind overrides under `by_kind`, and `by_kind.digest` for digests. Every
template is compiled when the config is loaded, in the same sandboxed environment the sinks
render with, so a syntax error or an unknown top-level name is a config error with its key
path (exit 2) rather than a surprise at 3 a.m.

What does not live here: rendering (`monitor.sinks.templates`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import AfterValidator, Field

from monitor.config.base import ConfigModel
from monitor.config.fields import Kind

TEMPLATE_NAMES = frozenset(
    {"event", "job", "project", "region", "console_url", "digest", "severity", "default_title"}
)
"""The top-level names a template may use (see docs/sinks.md, "Message templates")."""
MAX_TEMPLATE_CHARS = 4000


def sandbox() -> SandboxedEnvironment:
    """The environment templates compile in: sandboxed, no autoescape, undefined is an error."""
    return SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)


def check_template(source: str) -> str:
    """`source` if it compiles and uses only known top-level names; else `ValueError`."""
    env = sandbox()
    try:
        tree = env.parse(source)
        env.from_string(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None
    unknown = sorted(meta.find_undeclared_variables(tree) - TEMPLATE_NAMES)
    if unknown:
        names = ", ".join(sorted(TEMPLATE_NAMES))
        raise ValueError(f"unknown template variable {', '.join(unknown)} (known: {names})")
    return source


TemplateText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TEMPLATE_CHARS),
    AfterValidator(check_template),
    Kind("Jinja2 template"),
]


class TemplatePair(ConfigModel):
    """A title and/or a body template; a missing one falls back to the next level."""

    title: TemplateText | None = Field(default=None, description="Title template (one line).")
    body: TemplateText | None = Field(
        default=None, description="Body template (the product's markdown; replaces the facts)."
    )


TemplateSlot = Literal[
    "transition", "appeared", "vanished", "stuck", "overdue", "recovered", "digest"
]
"""An event kind, or `digest` for a message collapsing several events."""


class TemplateSettings(ConfigModel):
    """Jinja2 (sandboxed) overrides of a chat message's title and body."""

    title: TemplateText | None = Field(
        default=None, description="Title of every single-event message (not digests)."
    )
    body: TemplateText | None = Field(
        default=None, description="Body of every single-event message (not digests)."
    )
    by_kind: dict[TemplateSlot, TemplatePair] = Field(
        default_factory=dict,
        description=(
            "Overrides per event kind (transition, appeared, vanished, stuck, overdue,"
            " recovered) and for digests (`digest`; else the built-in digest)."
        ),
    )

    def as_mapping(self) -> dict[str, tuple[str | None, str | None]]:
        """Slot → (title, body): `default`, each event kind, and `digest`; unset slots omitted."""
        slots: dict[str, tuple[str | None, str | None]] = {}
        if self.title is not None or self.body is not None:
            slots["default"] = (self.title, self.body)
        for slot, pair in self.by_kind.items():
            if pair.title is not None or pair.body is not None:
                slots[slot] = (pair.title, pair.body)
        return slots
