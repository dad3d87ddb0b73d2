"""The Kustomize overlays beside the base, as Kubernetes sees them.

`ha-postgres`: two replicas sharing PostgreSQL state (one leads through a lease), a disruption
budget, anti-affinity, no claim. `sharded`: a StatefulSet of 3 shards, each taking its shard
from its pod name, with a claim per pod. Both render, pass the same validators as the base, and
keep the base's pod template apart from what the overlay changes on purpose.
"""

from __future__ import annotations

import copy
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from monitor.shard import Shard, resolve_shard
from tests.deploy.deploy_support import (
    DEPLOY,
    OVERLAYS,
    SCHEMAS,
    by_kind,
    container_of,
    documents,
    load_pod_config,
    pod_spec_of,
    render_kustomization,
    render_kustomize,
    run_tool,
    workload_of,
)

Doc = dict[str, Any]
NAMES = ["ha-postgres", "sharded"]
STATE_DIR = "/var/lib/dli-monitor"
POSTGRES_MOUNT = "/var/run/secrets/dli-monitor-postgres"
BASE_KINDS = ["ConfigMap", "ConfigMap", "NetworkPolicy", "PrometheusRule", "Service"]
BASE_KINDS += ["ServiceAccount", "ServiceMonitor"]
KINDS = {
    "ha-postgres": sorted([*BASE_KINDS, "Deployment", "PodDisruptionBudget"]),
    "sharded": sorted([*BASE_KINDS, "StatefulSet"]),
}


@dataclass(frozen=True)
class Overlay:
    """One rendered overlay: its directory, its output and that output's documents."""

    name: str
    rendered: str
    docs: list[Doc]

    @property
    def directory(self) -> Path:
        """The overlay's kustomization directory."""
        return OVERLAYS / self.name


def _render(name: str) -> Overlay:
    text = render_kustomization(OVERLAYS / name)
    return Overlay(name, text, documents(text))


@pytest.fixture(scope="module", params=NAMES)
def overlay(request: pytest.FixtureRequest) -> Overlay:
    name: str = request.param
    return _render(name)


@pytest.fixture(scope="module")
def ha() -> Overlay:
    return _render("ha-postgres")


@pytest.fixture(scope="module")
def sharded() -> Overlay:
    return _render("sharded")


@pytest.fixture(scope="module")
def base() -> list[Doc]:
    return documents(render_kustomize())


# --- reading the rendered documents ------------------------------------------------------------


def _config_map(docs: list[Doc]) -> Doc:
    """The rendered ConfigMap holding config.yaml."""
    found = [doc for doc in docs if doc["kind"] == "ConfigMap" and "config.yaml" in doc["data"]]
    assert len(found) == 1
    return found[0]


def _config_text(docs: list[Doc]) -> str:
    """config.yaml as the pod reads it: from the rendered ConfigMap."""
    text: str = _config_map(docs)["data"]["config.yaml"]
    return text


def _config(docs: list[Doc]) -> Doc:
    data: Doc = yaml.safe_load(_config_text(docs))
    return data


def _file_settings(data: Any) -> list[str]:
    """Every `*_file` path in a parsed config tree."""
    if isinstance(data, dict):
        own = [v for k, v in data.items() if str(k).endswith("_file") and isinstance(v, str)]
        return own + [path for value in data.values() for path in _file_settings(value)]
    if isinstance(data, list):
        return [path for item in data for path in _file_settings(item)]
    return []


def _example_secrets(overlay: Overlay) -> dict[str, Doc]:
    """The example Secrets an overlay needs, by name: the base's and the overlay's own."""
    paths = [DEPLOY / "secret.example.yaml", overlay.directory / "secret.example.yaml"]
    loaded = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in paths if p.exists()]
    return {secret["metadata"]["name"]: secret for secret in loaded}


def _secret_mounts(overlay: Overlay) -> dict[str, dict[str, str]]:
    """Mount directory → example keys and values, for each Secret volume of the pod."""
    examples = _example_secrets(overlay)
    volumes = {v["name"]: v for v in pod_spec_of(overlay.docs)["volumes"]}
    mounts: dict[str, dict[str, str]] = {}
    for mount in container_of(overlay.docs)["volumeMounts"]:
        secret = volumes.get(mount["name"], {}).get("secret")
        if secret is not None:
            mounts[mount["mountPath"]] = examples[secret["secretName"]]["stringData"]
    return mounts


def _without(pod: Doc, volumes: Set[str] = frozenset(), fields: Set[str] = frozenset()) -> Doc:
    """A copy of a pod spec without some volumes (and their mounts) and container fields."""
    pod = copy.deepcopy(pod)
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] not in volumes]
    for container in pod["containers"]:
        mounts = container["volumeMounts"]
        container["volumeMounts"] = [m for m in mounts if m["name"] not in volumes]
        for name in fields:
            container.pop(name, None)
    return pod


# --- every overlay -----------------------------------------------------------------------------


def test_each_overlay_renders_the_kinds_it_should_and_stays_namespace_agnostic(
    overlay: Overlay,
) -> None:
    assert sorted(doc["kind"] for doc in overlay.docs) == KINDS[overlay.name]
    assert all("namespace" not in doc["metadata"] for doc in overlay.docs)


def test_each_overlay_passes_kubernetes_validate_strict_with_its_example_secrets(
    overlay: Overlay, tmp_path: Path
) -> None:
    out = tmp_path / "rendered.yaml"
    out.write_text(overlay.rendered, encoding="utf-8")
    examples = [DEPLOY / "secret.example.yaml", overlay.directory / "secret.example.yaml"]
    done = run_tool("kubernetes-validate", "--strict", out, *[p for p in examples if p.exists()])
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    built_in = [d for d in overlay.docs if "monitoring.coreos.com" not in d["apiVersion"]]
    for doc in built_in:
        assert f"passed for resource {doc['kind'].lower()}/{doc['metadata']['name']}" in output
    for name in _example_secrets(overlay):
        assert f"passed for resource secret/{name}" in output


@pytest.mark.parametrize(
    ("kind", "schema"),
    [
        ("ServiceMonitor", "servicemonitor.strict.schema.json"),
        ("PrometheusRule", "prometheusrule.strict.schema.json"),
    ],
)
def test_each_overlays_custom_resources_pass_their_strict_json_schema(
    overlay: Overlay, tmp_path: Path, kind: str, schema: str
) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(by_kind(overlay.docs, kind)), encoding="utf-8")
    done = run_tool("check-jsonschema", "--schemafile", SCHEMAS / schema, path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_overlays_config_loads_and_fits_the_pod(overlay: Overlay, tmp_path: Path) -> None:
    settings = load_pod_config(_config_text(overlay.docs), tmp_path, _secret_mounts(overlay))
    pod = pod_spec_of(overlay.docs)
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_timeout + 5
    port = int(settings.server.listen.rsplit(":", 1)[1])
    assert {p["name"]: p["containerPort"] for p in container_of(overlay.docs)["ports"]} == {
        "metrics": port
    }


def test_each_overlays_config_map_is_mounted_where_the_args_read_it(overlay: Overlay) -> None:
    config = _config_map(overlay.docs)
    volume = next(
        v
        for v in pod_spec_of(overlay.docs)["volumes"]
        if v.get("configMap", {}).get("name") == config["metadata"]["name"]
    )
    container = container_of(overlay.docs)
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    args = container["args"]
    assert args[args.index("--config") + 1] == f"{mount['mountPath']}/config.yaml"


def test_every_file_the_config_reads_is_a_key_of_a_mounted_example_secret(
    overlay: Overlay,
) -> None:
    mounts = _secret_mounts(overlay)
    readonly = {
        m["mountPath"]: m.get("readOnly") for m in container_of(overlay.docs)["volumeMounts"]
    }
    for path in _file_settings(_config(overlay.docs)):
        folder, key = str(PurePosixPath(path).parent), PurePosixPath(path).name
        assert folder in mounts, f"{path} is not on a mounted Secret"
        assert key in mounts[folder], f"{path}: the example Secret has no key {key}"
        assert readonly[folder] is True


def test_each_overlays_example_secrets_hold_no_real_values(overlay: Overlay) -> None:
    for secret in _example_secrets(overlay).values():
        assert all("REPLACE" in value for value in secret["stringData"].values())


def test_each_overlay_keeps_the_base_image_hardening_probes_ports_and_resources(
    overlay: Overlay, base: list[Doc]
) -> None:
    pod, base_pod = pod_spec_of(overlay.docs), pod_spec_of(base)
    for key in ("securityContext", "serviceAccountName", "automountServiceAccountToken"):
        assert pod[key] == base_pod[key], key
    container, base_container = container_of(overlay.docs), container_of(base)
    for key in (
        "image",
        "imagePullPolicy",
        "securityContext",
        "livenessProbe",
        "readinessProbe",
        "ports",
        "resources",
    ):
        assert container[key] == base_container[key], key
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "command" not in container


def test_each_overlay_runs_pod_name_from_the_downward_api(overlay: Overlay) -> None:
    env = {e["name"]: e for e in container_of(overlay.docs)["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_each_overlays_service_network_policy_and_monitor_select_the_pods(
    overlay: Overlay,
) -> None:
    labels = workload_of(overlay.docs)["spec"]["template"]["metadata"]["labels"]
    assert workload_of(overlay.docs)["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = by_kind(overlay.docs, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    policy = by_kind(overlay.docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"]
    assert policy.items() <= labels.items()
    monitor = by_kind(overlay.docs, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert monitor.items() <= service["metadata"]["labels"].items()


# --- ha-postgres -------------------------------------------------------------------------------


def test_ha_runs_two_replicas_rolled_one_at_a_time_with_a_standby_left(ha: Overlay) -> None:
    spec = workload_of(ha.docs)["spec"]
    assert workload_of(ha.docs)["kind"] == "Deployment"
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }


def test_ha_has_a_disruption_budget_keeping_one_pod(ha: Overlay) -> None:
    budget = by_kind(ha.docs, "PodDisruptionBudget")["spec"]
    assert budget["minAvailable"] == 1
    labels = workload_of(ha.docs)["spec"]["template"]["metadata"]["labels"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()


def test_ha_prefers_to_spread_the_replicas_over_nodes(ha: Overlay) -> None:
    anti = pod_spec_of(ha.docs)["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    [term] = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    labels = workload_of(ha.docs)["spec"]["template"]["metadata"]["labels"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()


def test_ha_keeps_nothing_on_a_volume(ha: Overlay) -> None:
    assert not [doc for doc in ha.docs if doc["kind"] == "PersistentVolumeClaim"]
    assert not [v for v in pod_spec_of(ha.docs)["volumes"] if "persistentVolumeClaim" in v]
    assert STATE_DIR not in {m["mountPath"] for m in container_of(ha.docs)["volumeMounts"]}


def test_ha_keeps_state_in_postgresql_with_the_password_from_the_mounted_secret(
    ha: Overlay,
) -> None:
    state = _config(ha.docs)["state"]
    assert set(state) == {"url", "password_file"}
    assert state["url"].startswith("postgresql://")
    assert ":" not in state["url"].split("//", 1)[1].split("@", 1)[0]  # no password in the URL
    mounts = _secret_mounts(ha)
    assert state["password_file"] == f"{POSTGRES_MOUNT}/password"
    assert "password" in mounts[POSTGRES_MOUNT]


def test_ha_config_is_the_base_config_apart_from_state(ha: Overlay) -> None:
    base = yaml.safe_load((DEPLOY / "config.yaml").read_text(encoding="utf-8"))
    ours = _config(ha.docs)
    assert {k: v for k, v in ours.items() if k != "state"} == {
        k: v for k, v in base.items() if k != "state"
    }


def test_ha_pod_template_is_the_base_one_plus_affinity_env_and_the_password(
    ha: Overlay, base: list[Doc]
) -> None:
    pod = _without(pod_spec_of(ha.docs), volumes={"postgres"}, fields={"env"})
    pod.pop("affinity")
    expected = _without(pod_spec_of(base), volumes={"state"})
    config = next(v for v in expected["volumes"] if v["name"] == "config")
    config["configMap"]["name"] = next(v for v in pod["volumes"] if v["name"] == "config")[
        "configMap"
    ]["name"]
    assert pod == expected


def test_ha_may_reach_postgresql_and_still_dns_and_https(ha: Overlay, base: list[Doc]) -> None:
    egress = by_kind(ha.docs, "NetworkPolicy")["spec"]["egress"]
    assert by_kind(base, "NetworkPolicy")["spec"]["egress"] == egress[:-1]
    assert egress[-1] == {"ports": [{"port": 5432, "protocol": "TCP"}]}


# --- sharded -----------------------------------------------------------------------------------


def test_sharded_runs_a_statefulset_of_three_and_no_deployment_or_shared_claim(
    sharded: Overlay,
) -> None:
    workload = workload_of(sharded.docs)
    assert workload["kind"] == "StatefulSet"
    assert workload["spec"]["replicas"] == 3
    assert not [d for d in sharded.docs if d["kind"] in {"Deployment", "PersistentVolumeClaim"}]


def test_sharded_pods_take_their_shard_from_their_name(sharded: Overlay, base: list[Doc]) -> None:
    workload = workload_of(sharded.docs)
    replicas = workload["spec"]["replicas"]
    args = container_of(sharded.docs)["args"]
    assert args == [*container_of(base)["args"], "--total-shards", str(replicas)]
    pods = [f"{workload['metadata']['name']}-{ordinal}" for ordinal in range(replicas)]
    shards = [resolve_shard(None, replicas, pod) for pod in pods]
    assert shards == [Shard(ordinal, replicas) for ordinal in range(replicas)]


def test_sharded_gives_each_pod_a_claim_for_its_state(sharded: Overlay, base: list[Doc]) -> None:
    [template] = workload_of(sharded.docs)["spec"]["volumeClaimTemplates"]
    assert template["spec"] == by_kind(base, "PersistentVolumeClaim")["spec"]
    mounts = {m["mountPath"]: m["name"] for m in container_of(sharded.docs)["volumeMounts"]}
    state = _config(sharded.docs)["state"]
    assert mounts[str(PurePosixPath(state["path"]).parent)] == template["metadata"]["name"]
    assert template["metadata"]["name"] not in {
        v["name"] for v in pod_spec_of(sharded.docs)["volumes"]
    }


def test_sharded_service_name_is_a_headless_service_selecting_the_pods(sharded: Overlay) -> None:
    workload = workload_of(sharded.docs)
    [service] = [
        d
        for d in sharded.docs
        if d["kind"] == "Service" and d["metadata"]["name"] == workload["spec"]["serviceName"]
    ]
    assert service["spec"]["clusterIP"] == "None"
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_sharded_config_is_the_base_config(sharded: Overlay) -> None:
    assert _config_text(sharded.docs) == (DEPLOY / "config.yaml").read_text(encoding="utf-8")


def test_sharded_pod_template_is_a_faithful_copy_of_the_base_one(
    sharded: Overlay, base: list[Doc]
) -> None:
    template = copy.deepcopy(workload_of(sharded.docs)["spec"]["template"])
    base_template = copy.deepcopy(workload_of(base)["spec"]["template"])
    assert template["metadata"] == base_template["metadata"]
    for container in template["spec"]["containers"]:
        container.pop("env")
        container.pop("args")
    for container in base_template["spec"]["containers"]:
        container.pop("args")
    state = {"name": "state", "persistentVolumeClaim": {"claimName": "dli-batch-monitor-state"}}
    assert state in base_template["spec"]["volumes"]
    base_template["spec"]["volumes"].remove(state)
    assert template["spec"] == base_template["spec"]
