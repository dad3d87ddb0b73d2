"""docs/deployment.md's "Kustomize" section describes what deploy/base/ really holds."""

from __future__ import annotations

import yaml

from tests.deploy.deploy_support import DEPLOY, ROOT

PAGE = ROOT / "docs" / "deployment.md"


def _section() -> str:
    text = PAGE.read_text(encoding="utf-8")
    assert text.count("\n## Kustomize\n") == 1
    return text.split("\n## Kustomize\n", 1)[1].split("\n## ", 1)[0]


def test_the_deploy_section_names_every_file_in_deploy() -> None:
    section = _section()
    files = {path.name for path in DEPLOY.iterdir() if path.is_file()}
    files.discard("example-config.yaml")  # documented under Configuration
    missing = sorted(name for name in files if f"deploy/base/{name}" not in section)
    assert missing == []


def test_the_deploy_section_applies_the_base_and_creates_the_secret_it_mounts() -> None:
    section = _section()
    assert "kubectl apply -n dli-monitor -k deploy/base/" in section
    secret = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text(encoding="utf-8"))
    assert f"create secret generic {secret['metadata']['name']}" in section
    for key in secret["stringData"]:
        assert f"--from-file={key}=" in section
