"""The Dockerfile: hadolint-clean, and shaped the way the Deployment and the issue expect."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.deploy.deploy_support import DEPLOY, ROOT, run_tool

DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _final_stage() -> list[tuple[str, str]]:
    pairs = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(pairs) if keyword == "FROM")
    return pairs[last_from:]


def test_hadolint_finds_nothing() -> None:
    done = run_tool("hadolint", DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_would_flag_a_mutable_base_tag(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install aiohttp\n", encoding="utf-8")
    done = run_tool("hadolint", bad)
    assert done.returncode == 1
    assert "DL3007" in done.stdout


def test_the_base_is_a_build_argument_used_by_every_stage() -> None:
    pairs = _instructions()
    assert pairs[0] == ("ARG", "BASE=python:3.12-slim")
    froms = [rest for keyword, rest in pairs if keyword == "FROM"]
    assert len(froms) >= 2
    assert all(rest.split()[0] == "${BASE}" for rest in froms)


def test_the_final_stage_runs_as_a_non_root_user_with_exec_form_entrypoint() -> None:
    final = dict(_final_stage())
    assert final["USER"].split(":")[0] not in {"0", "root"}
    assert json.loads(final["ENTRYPOINT"]) == ["dli-monitor"]
    assert json.loads(final["CMD"]) == ["run", "--config", "/etc/dli-monitor/config.yaml"]


def test_the_final_stage_copies_only_the_built_virtualenv_and_installs_nothing() -> None:
    final = _final_stage()
    copies = [rest for keyword, rest in final if keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert not re.search(r"\b(pip|apt-get|gcc|make)\b", runs)


def test_the_state_volume_is_where_the_deploy_config_keeps_its_database() -> None:
    final = dict(_final_stage())
    config = yaml.safe_load((DEPLOY / "config.yaml").read_text(encoding="utf-8"))
    assert json.loads(final["VOLUME"]) == [str(Path(config["state"]["path"]).parent)]


def test_the_build_context_keeps_out_everything_but_the_package() -> None:
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignore
    assert {"!pyproject.toml", "!README.md", "!monitor/"} <= set(ignore)
