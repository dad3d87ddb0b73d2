"""deploy/ as Kubernetes sees it: kustomize renders, the real validators pass, and the
manifests keep the properties the daemon relies on (one pod, drain time, state volume, hardening).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.config import load_settings
from tests.deploy.deploy_support import (
    DEPLOY,
    SCHEMAS,
    by_kind,
    documents,
    render_kustomize,
    run_tool,
)

SECRETS_DIR = "/var/run/secrets/dli-monitor"


@pytest.fixture(scope="module")
def rendered() -> str:
    return render_kustomize()


@pytest.fixture(scope="module")
def docs(rendered: str) -> list[dict[str, Any]]:
    return documents(rendered)


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = by_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _deploy_settings(tmp_path: Path) -> Any:
    """deploy/config.yaml loaded with its secret files pointed at placeholder files."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    example = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text(encoding="utf-8"))
    for key, value in example["stringData"].items():
        (secrets / key).write_text(value + "\n", encoding="utf-8")
    text = (DEPLOY / "config.yaml").read_text(encoding="utf-8").replace(SECRETS_DIR, str(secrets))
    config = tmp_path / "config.yaml"
    config.write_text(text, encoding="utf-8")
    return load_settings(config, environ={})


def test_kustomize_renders_every_kind_the_issue_asks_for(docs: list[dict[str, Any]]) -> None:
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == sorted(
        [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PersistentVolumeClaim",
            "PrometheusRule",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )
    assert all("namespace" not in doc["metadata"] for doc in docs)  # namespace-agnostic


def test_kubernetes_validate_strict_passes_on_the_rendered_base_and_the_example_secret(
    rendered: str, tmp_path: Path
) -> None:
    out = tmp_path / "rendered.yaml"
    out.write_text(rendered, encoding="utf-8")
    done = run_tool("kubernetes-validate", "--strict", out, DEPLOY / "secret.example.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    for resource in (
        "deployment/dli-batch-monitor",
        "service/dli-batch-monitor",
        "serviceaccount/dli-batch-monitor",
        "persistentvolumeclaim/dli-batch-monitor-state",
        "networkpolicy/dli-batch-monitor",
        "secret/dli-batch-monitor-credentials",
    ):
        assert f"passed for resource {resource}" in done.stdout + done.stderr


def test_kubernetes_validate_strict_rejects_a_misspelt_field(tmp_path: Path) -> None:
    bad = (DEPLOY / "deployment.yaml").read_text(encoding="utf-8")
    bad = bad.replace("serviceAccountName:", "serviceAcountName:")
    (tmp_path / "bad.yaml").write_text(bad, encoding="utf-8")
    done = run_tool("kubernetes-validate", "--strict", tmp_path / "bad.yaml")
    assert done.returncode != 0
    assert "serviceAcountName" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("kind", "schema"),
    [
        ("ServiceMonitor", "servicemonitor.strict.schema.json"),
        ("PrometheusRule", "prometheusrule.strict.schema.json"),
    ],
)
def test_the_custom_resources_pass_their_strict_json_schema(
    docs: list[dict[str, Any]], tmp_path: Path, kind: str, schema: str
) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(by_kind(docs, kind)), encoding="utf-8")
    done = run_tool("check-jsonschema", "--schemafile", SCHEMAS / schema, path)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("source", "field", "typo", "schema"),
    [
        ("servicemonitor.yaml", "interval", "intervall", "servicemonitor.strict.schema.json"),
        ("prometheusrule.yaml", "for", "fro", "prometheusrule.strict.schema.json"),
    ],
)
def test_the_strict_schemas_reject_an_unknown_field(
    tmp_path: Path, source: str, field: str, typo: str, schema: str
) -> None:
    text = (DEPLOY / source).read_text(encoding="utf-8")
    assert f" {field}: " in text
    (tmp_path / source).write_text(text.replace(f" {field}: ", f" {typo}: ", 1), encoding="utf-8")
    done = run_tool("check-jsonschema", "--schemafile", SCHEMAS / schema, tmp_path / source)
    assert done.returncode == 1
    assert f"'{typo}' was unexpected" in done.stdout


def test_the_deployment_runs_one_pod_replaced_not_rolled(docs: list[dict[str, Any]]) -> None:
    spec = by_kind(docs, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_the_grace_period_exceeds_the_configs_shutdown_timeout(
    docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    settings = _deploy_settings(tmp_path)
    grace = by_kind(docs, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > settings.shutdown_timeout + 5


def test_the_pod_is_hardened(docs: list[dict[str, Any]]) -> None:
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = _container(docs)["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert by_kind(docs, "ServiceAccount")["automountServiceAccountToken"] is False


def test_the_container_has_probes_resources_and_no_shell_command(
    docs: list[dict[str, Any]],
) -> None:
    container = _container(docs)
    assert "command" not in container  # the image's exec-form ENTRYPOINT stays PID 1
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]


def test_the_config_map_holds_deploy_config_and_is_mounted_where_the_args_read_it(
    docs: list[dict[str, Any]],
) -> None:
    configmaps = [doc for doc in docs if doc["kind"] == "ConfigMap"]
    config = next(cm for cm in configmaps if "config.yaml" in cm["data"])
    assert config["data"]["config.yaml"] == (DEPLOY / "config.yaml").read_text(encoding="utf-8")
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    volume = next(
        v
        for v in pod["volumes"]
        if v.get("configMap", {}).get("name") == config["metadata"]["name"]
    )
    mount = next(m for m in _container(docs)["volumeMounts"] if m["name"] == volume["name"])
    args = _container(docs)["args"]
    assert args[args.index("--config") + 1] == f"{mount['mountPath']}/config.yaml"


def test_the_state_file_lives_on_the_claim_and_tmp_is_an_empty_dir(
    docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    settings = _deploy_settings(tmp_path)
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _container(docs)["volumeMounts"]}
    state_dir = str(Path(settings.state.path).parent)
    claim = by_kind(docs, "PersistentVolumeClaim")["metadata"]["name"]
    assert volumes[mounts[state_dir]]["persistentVolumeClaim"]["claimName"] == claim
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_every_secret_file_the_config_reads_is_a_key_of_the_mounted_secret(
    docs: list[dict[str, Any]],
) -> None:
    text = (DEPLOY / "config.yaml").read_text(encoding="utf-8")
    wanted = {
        line.split(f"{SECRETS_DIR}/", 1)[1].strip()
        for line in text.splitlines()
        if f"{SECRETS_DIR}/" in line and not line.lstrip().startswith("#")
    }
    assert wanted == {"access_key", "secret_key", "ops_webhook_url"}
    example = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text(encoding="utf-8"))
    assert set(example["stringData"]) == wanted
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    secret_volume = next(v for v in pod["volumes"] if "secret" in v)
    assert secret_volume["secret"]["secretName"] == example["metadata"]["name"]
    mounts = {m["name"]: m for m in _container(docs)["volumeMounts"]}
    assert mounts[secret_volume["name"]]["mountPath"] == SECRETS_DIR
    assert mounts[secret_volume["name"]]["readOnly"] is True


def test_the_example_secret_holds_no_real_values() -> None:
    example = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text(encoding="utf-8"))
    assert all("REPLACE" in value for value in example["stringData"].values())


def test_deploy_config_is_valid_and_serves_on_the_containers_port(
    docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    settings = _deploy_settings(tmp_path)
    port = int(settings.server.listen.rsplit(":", 1)[1])
    container_ports = {p["name"]: p["containerPort"] for p in _container(docs)["ports"]}
    assert container_ports["metrics"] == port
    service = by_kind(docs, "Service")["spec"]
    assert service["ports"][0]["targetPort"] == "metrics"


def test_the_service_monitor_scrapes_the_services_metrics_port(
    docs: list[dict[str, Any]],
) -> None:
    service = by_kind(docs, "Service")
    monitor = by_kind(docs, "ServiceMonitor")["spec"]
    selector = monitor["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["endpoints"]] == [service["spec"]["ports"][0]["name"]]
    assert monitor["endpoints"][0]["path"] == "/metrics"


def test_the_service_selects_the_pods(docs: list[dict[str, Any]]) -> None:
    service = by_kind(docs, "Service")["spec"]["selector"]
    labels = by_kind(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service.items() <= labels.items()


def test_the_network_policy_allows_only_dns_and_https_out_and_the_metrics_port_in(
    docs: list[dict[str, Any]],
) -> None:
    policy = by_kind(docs, "NetworkPolicy")["spec"]
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    egress_ports = sorted(
        (port["protocol"], port["port"]) for rule in policy["egress"] for port in rule["ports"]
    )
    assert egress_ports == [("TCP", 53), ("TCP", 443), ("UDP", 53)]
    assert all("to" not in rule or rule["to"] for rule in policy["egress"])
    ingress_ports = [port["port"] for rule in policy["ingress"] for port in rule["ports"]]
    assert ingress_ports == ["metrics"]
    pod_labels = by_kind(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
