"""The pinned constraints agree with pyproject.toml: every dependency is pinned to a version
its specifier allows, and the image's pins are the tests' pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def pins(name: str) -> dict[str, str]:
    """`requirements/<name>.txt` as {canonical package name: version}."""
    found: dict[str, str] = {}
    for line in (ROOT / "requirements" / f"{name}.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            package, _, version = line.partition("==")
            found[canonicalize_name(package)] = version.strip()
    return found


def declared(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    items = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(item) for item in items]


def test_every_runtime_dependency_is_pinned_to_an_allowed_version() -> None:
    runtime = pins("runtime")
    for requirement in declared():
        version = runtime.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is not pinned"
        assert requirement.specifier.contains(version, prereleases=True), requirement


def test_every_test_dependency_is_pinned_to_an_allowed_version() -> None:
    test = pins("test")
    for requirement in [*declared(), *declared("test")]:
        version = test.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is not pinned"
        assert requirement.specifier.contains(version, prereleases=True), requirement


def test_the_image_and_the_tests_run_the_same_versions() -> None:
    runtime, test = pins("runtime"), pins("test")
    assert {name: test.get(name) for name in runtime} == runtime
