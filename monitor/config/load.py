"""Loading the configuration file: YAML, `${ENV}` references, `*_file` secrets, validation.

A YAML file is read (a key given twice is an error), `${ENV}` references are resolved and
`*_file` secrets are read while the raw tree is walked (so every problem keeps its key path),
and the result is validated by `Settings`. Every problem is collected and raised at once as a
`ConfigError` that never contains a secret.

What does not live here: choosing the config path (the CLI), and turning settings into objects
(the composition root, `monitor.app`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.config.errors import ConfigError, convert, format_loc
from monitor.config.fields import Loc
from monitor.config.models import Settings
from monitor.redact import scrub

FILE_BACKED = (
    "access_key",
    "secret_key",
    "security_token",
    "password",
    "url",
    "secret",
    "bearer_token",
)
"""Keys that may instead be given as `<key>_file`: a path to a file holding the value."""


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
        problems += [p for p in convert(exc) if not any(_under(p[0], s) for s in prep.skip)]
    if problems:
        lines = [f"{format_loc(loc)}: {message}" for loc, message in problems]
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
