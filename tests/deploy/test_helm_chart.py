"""The Helm chart deploy/helm/dli-batch-monitor, as Helm and Kubernetes see it.

`helm lint --strict` passes; `helm template` renders objects that pass the same validators as
the Kustomize base; the default render agrees with `kubectl kustomize deploy/base` on every
object (kinds, names, pod and container specs, Service, claims, rules, dashboard), and the
`ha` and `sharding` values agree with the ha-postgres and sharded overlays. The chart's copies
of the base's config, dashboard and rules are checked against the originals so they cannot
drift. Helm's own additions are allowed and named: the instance label (in selectors too), the
chart/version/managed-by labels, the config checksum annotation, and a config ConfigMap name
without a content hash.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from monitor import __version__
from tests.deploy.deploy_support import (
    CHART,
    DEPLOY,
    OVERLAYS,
    SCHEMAS,
    by_kind,
    container_of,
    documents,
    load_pod_config,
    pod_spec_of,
    render_helm,
    render_kustomization,
    render_kustomize,
    run_helm,
    run_tool,
    workload_of,
)

Doc = dict[str, Any]
Key = tuple[str, str]

RELEASE = "dli-batch-monitor"
INSTANCE = "app.kubernetes.io/instance"
HELM_LABELS = {INSTANCE, "helm.sh/chart", "app.kubernetes.io/version"}
HELM_LABELS |= {"app.kubernetes.io/managed-by"}
CHECKSUM = "checksum/config"
CONFIG_HASH = re.compile(r"^(dli-batch-monitor-config)-[a-z0-9]{10}$")
SECRETS_DIR = "/var/run/secrets/dli-monitor"
POSTGRES_DIR = "/var/run/secrets/dli-monitor-postgres"
BASE_SECRET = DEPLOY / "secret.example.yaml"
POSTGRES_SECRET = OVERLAYS / "ha-postgres" / "secret.example.yaml"

MODES: dict[str, tuple[str, ...]] = {
    "default": (),
    "ha": ("--set", "ha.enabled=true"),
    "sharding": ("--set", "sharding.enabled=true"),
}
OVERLAY_OF = {"ha": "ha-postgres", "sharding": "sharded"}
EXAMPLE_SECRETS = {
    "default": [BASE_SECRET],
    "ha": [BASE_SECRET, POSTGRES_SECRET],
    "sharding": [BASE_SECRET],
}


@dataclass(frozen=True)
class Render:
    """One `helm template` run: its values, its output and that output's documents."""

    mode: str
    rendered: str
    docs: list[Doc]


def _render(mode: str) -> Render:
    text = render_helm(*MODES[mode])
    return Render(mode, text, documents(text))


@pytest.fixture(scope="module", params=list(MODES))
def chart(request: pytest.FixtureRequest) -> Render:
    mode: str = request.param
    return _render(mode)


@pytest.fixture(scope="module")
def default() -> list[Doc]:
    return _render("default").docs


@pytest.fixture(scope="module")
def ha() -> list[Doc]:
    return _render("ha").docs


@pytest.fixture(scope="module")
def sharding() -> list[Doc]:
    return _render("sharding").docs


@pytest.fixture(scope="module")
def base() -> list[Doc]:
    return documents(render_kustomize())


@pytest.fixture(scope="module")
def overlays() -> dict[str, list[Doc]]:
    return {
        mode: documents(render_kustomization(OVERLAYS / name)) for mode, name in OVERLAY_OF.items()
    }


# --- comparing Helm's output with kustomize's --------------------------------------------------


def _labels(labels: Doc) -> Doc:
    return {key: value for key, value in labels.items() if key not in HELM_LABELS}


def _normalise(node: Any) -> Any:
    """A document without what differs by design between Helm's and kustomize's output.

    That is Helm's labels and checksum annotation, kustomize's config hash, the config's text
    (compared as data), and the order of volumes and mounts (kustomize patches prepend theirs).
    """
    if isinstance(node, list):
        return [_normalise(item) for item in node]
    if isinstance(node, str):
        return CONFIG_HASH.sub(r"\1", node)
    if not isinstance(node, dict):
        return node
    out = {key: _normalise(_without_helm(key, value)) for key, value in node.items()}
    return {key: value for key, value in out.items() if value != {} or key != "annotations"}


def _without_helm(key: str, value: Any) -> Any:
    """One field of a document without Helm's additions (see `_normalise`)."""
    if key in {"labels", "matchLabels"} and isinstance(value, dict):
        return _labels(value)
    if key == "selector" and isinstance(value, dict) and "matchLabels" not in value:
        return _labels(value)  # a Service's selector is a bare label set
    if key == "annotations" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k != CHECKSUM}
    if key in {"volumes", "volumeMounts"} and isinstance(value, list):
        return sorted(value, key=lambda item: str(item["name"]))
    if key == "config.yaml" and isinstance(value, str):
        return yaml.safe_load(value)  # compared as data: with ha, Helm rewrites the text
    return value


def _objects(docs: list[Doc]) -> dict[Key, Doc]:
    """The normalised documents by (kind, name)."""
    normalised = [_normalise(doc) for doc in docs]
    objects = {(doc["kind"], doc["metadata"]["name"]): doc for doc in normalised}
    assert len(objects) == len(docs), "two objects of one kind share a name"
    return objects


def _config_text(docs: list[Doc]) -> str:
    [config] = [d for d in docs if d["kind"] == "ConfigMap" and "config.yaml" in d["data"]]
    text: str = config["data"]["config.yaml"]
    return text


def _values(*args: str) -> tuple[str, ...]:
    """`--set` arguments for `name=value` pairs."""
    return tuple(arg for pair in args for arg in ("--set", pair))


def _example(path: Path) -> Doc:
    data: Doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


# --- the chart's files -------------------------------------------------------------------------


def test_the_chart_is_helm_3_at_version_0_1_0_of_the_monitors_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "dli-batch-monitor"
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == __version__


@pytest.mark.parametrize(
    ("copy_path", "original"),
    [
        ("files/dashboard.json", "dashboard.json"),
        ("files/prometheusrule.yaml", "prometheusrule.yaml"),
    ],
)
def test_the_charts_copies_of_the_base_files_are_equal_to_them(
    copy_path: str, original: str
) -> None:
    assert (CHART / copy_path).read_bytes() == (DEPLOY / original).read_bytes()


def test_the_charts_default_config_is_the_base_config_text() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert values["config"] == (DEPLOY / "config.yaml").read_text(encoding="utf-8")


# Values passed through to Kubernetes whole: their inner keys are Kubernetes fields.
PASS_THROUGH = {
    ("podSecurityContext",),
    ("securityContext",),
    ("resources",),
    ("livenessProbe",),
    ("readinessProbe",),
    ("dashboard", "labels"),
}
KEY_LINE = re.compile(r"^( *)([A-Za-z][\w.-]*):")


def test_every_key_of_values_yaml_has_a_comment() -> None:
    lines = (CHART / "values.yaml").read_text(encoding="utf-8").splitlines()
    path: list[tuple[int, str]] = []
    block_indent: int | None = None  # inside a block scalar (config: |) deeper than this
    previous = ""
    undocumented = []
    for line in lines:
        indent = len(line) - len(line.lstrip(" "))
        if block_indent is not None:
            if not line.strip() or indent > block_indent:
                continue
            block_indent = None
        if not line.strip():
            continue
        match = KEY_LINE.match(line)
        if match:
            path = [(i, k) for i, k in path if i < indent]
            keys = tuple(k for _, k in path)
            inside = any(keys[: n + 1] in PASS_THROUGH for n in range(len(keys)))
            if not inside and not previous.lstrip().startswith("#"):
                undocumented.append(".".join((*keys, match.group(2))))
            path.append((indent, match.group(2)))
            if line.rstrip().endswith(("|", ">", "|-", ">-")):
                block_indent = indent
        previous = line
    assert not undocumented


# --- helm lint and helm template ---------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        (),
        _values("ha.enabled=true"),
        _values("sharding.enabled=true", "sharding.shards=5"),
        _values("secret.create=true", "secret.stringData.access_key=x"),
        _values("persistence.enabled=false", "networkPolicy.enabled=false"),
    ],
    ids=["default", "ha", "sharding", "secret-create", "no-persistence"],
)
def test_helm_lint_strict_passes(values: tuple[str, ...]) -> None:
    done = run_helm("lint", "--strict", CHART, *values)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


REFUSED_BY_TEMPLATE = [
    (_values("ha.enabled=true", "sharding.enabled=true"), "cannot be combined"),
    (
        _values("sharding.enabled=true", "persistence.existingClaim=mine"),
        "each shard needs its own claim",
    ),
    (_values("secret.create=true"), "secret.create needs secret.stringData"),
    (_values("config=a: [b"), "config is not valid YAML"),
]
REFUSED_BY_SCHEMA = [
    (_values("persistance.enabled=false"), "Additional property persistance is not allowed"),
    (_values("logFormat=text"), "logFormat: logFormat must be one of"),
    (_values("sharding.shards=0"), "sharding.shards: Must be greater than or equal to 1"),
    (_values("prometheusRule.runbookBaseUrl=docs"), "runbookBaseUrl: Does not match pattern"),
]


@pytest.mark.parametrize(("values", "message"), REFUSED_BY_TEMPLATE + REFUSED_BY_SCHEMA)
def test_helm_template_refuses_values_that_cannot_work_and_says_why(
    values: tuple[str, ...], message: str
) -> None:
    done = run_helm("template", RELEASE, CHART, *values)
    assert done.returncode != 0
    assert message in done.stderr


@pytest.mark.parametrize(("values", "message"), REFUSED_BY_SCHEMA)
def test_helm_lint_strict_rejects_values_outside_the_schema(
    values: tuple[str, ...], message: str
) -> None:
    # (A template's `fail` is only an [INFO] line for `helm lint`, so lint is not asked here.)
    done = run_helm("lint", "--strict", CHART, *values)
    assert done.returncode != 0
    assert message in done.stdout + done.stderr


def test_each_render_passes_kubernetes_validate_strict_with_its_example_secrets(
    chart: Render, tmp_path: Path
) -> None:
    out = tmp_path / "rendered.yaml"
    out.write_text(chart.rendered, encoding="utf-8")
    done = run_tool("kubernetes-validate", "--strict", out, *EXAMPLE_SECRETS[chart.mode])
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for doc in chart.docs:
        if "monitoring.coreos.com" not in doc["apiVersion"]:
            assert f"passed for resource {doc['kind'].lower()}/{doc['metadata']['name']}" in output


@pytest.mark.parametrize(
    ("kind", "schema"),
    [
        ("ServiceMonitor", "servicemonitor.strict.schema.json"),
        ("PrometheusRule", "prometheusrule.strict.schema.json"),
    ],
)
def test_each_renders_custom_resources_pass_their_strict_json_schema(
    chart: Render, tmp_path: Path, kind: str, schema: str
) -> None:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(by_kind(chart.docs, kind)), encoding="utf-8")
    done = run_tool("check-jsonschema", "--schemafile", SCHEMAS / schema, path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_render_stays_namespace_agnostic_and_labels_every_object_like_the_base(
    chart: Render,
) -> None:
    for doc in chart.docs:
        assert "namespace" not in doc["metadata"]
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "dli-batch-monitor"
        assert labels["app.kubernetes.io/part-of"] == "dli-batch-monitor"
        assert labels[INSTANCE] == RELEASE


def test_each_renders_config_loads_and_fits_the_pod(chart: Render, tmp_path: Path) -> None:
    mounts = {SECRETS_DIR: _example(BASE_SECRET)["stringData"]}
    if chart.mode == "ha":
        mounts[POSTGRES_DIR] = _example(POSTGRES_SECRET)["stringData"]
    settings = load_pod_config(_config_text(chart.docs), tmp_path, mounts)
    assert pod_spec_of(chart.docs)["terminationGracePeriodSeconds"] > settings.shutdown_timeout + 5
    port = int(settings.server.listen.rsplit(":", 1)[1])
    assert container_of(chart.docs)["ports"] == [
        {"name": "metrics", "containerPort": port, "protocol": "TCP"}
    ]


# --- the default render is the Kustomize base --------------------------------------------------


def test_the_default_render_has_the_bases_objects(default: list[Doc], base: list[Doc]) -> None:
    assert sorted(_objects(default)) == sorted(_objects(base))


def test_the_default_render_equals_the_base_object_by_object(
    default: list[Doc], base: list[Doc]
) -> None:
    ours, theirs = _objects(default), _objects(base)
    for key, expected in theirs.items():
        assert ours[key] == expected, key


@pytest.mark.parametrize(
    "field",
    [
        "securityContext",
        "serviceAccountName",
        "automountServiceAccountToken",
        "terminationGracePeriodSeconds",
        "volumes",
    ],
)
def test_the_default_pod_spec_equals_the_bases(
    default: list[Doc], base: list[Doc], field: str
) -> None:
    assert _normalise(pod_spec_of(default).get(field)) == _normalise(pod_spec_of(base).get(field))


@pytest.mark.parametrize(
    "field",
    [
        "securityContext",
        "livenessProbe",
        "readinessProbe",
        "ports",
        "volumeMounts",
        "resources",
        "args",
        "env",
        "image",
        "imagePullPolicy",
        "command",
    ],
)
def test_the_default_container_equals_the_bases(
    default: list[Doc], base: list[Doc], field: str
) -> None:
    assert container_of(default).get(field) == container_of(base).get(field)


def test_the_default_deployment_runs_one_pod_replaced_not_rolled(default: list[Doc]) -> None:
    spec = by_kind(default, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_the_service_has_the_bases_ports_and_selects_the_release_pods(
    default: list[Doc], base: list[Doc]
) -> None:
    ours, theirs = by_kind(default, "Service")["spec"], by_kind(base, "Service")["spec"]
    assert ours["ports"] == theirs["ports"]
    assert ours["type"] == theirs["type"]
    assert ours["selector"] == {**theirs["selector"], INSTANCE: RELEASE}
    pod_labels = workload_of(default)["spec"]["template"]["metadata"]["labels"]
    assert ours["selector"].items() <= pod_labels.items()
    monitor = by_kind(default, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert monitor.items() <= by_kind(default, "Service")["metadata"]["labels"].items()


def test_the_default_config_map_holds_the_base_config_text(default: list[Doc]) -> None:
    assert _config_text(default) == (DEPLOY / "config.yaml").read_text(encoding="utf-8")


def test_the_dashboard_config_map_holds_the_base_dashboard_for_the_grafana_sidecar(
    default: list[Doc], base: list[Doc]
) -> None:
    name = "dli-batch-monitor-dashboard"
    ours, theirs = _objects(default)[("ConfigMap", name)], _objects(base)[("ConfigMap", name)]
    assert ours["data"] == {
        "dli-batch-monitor.json": (DEPLOY / "dashboard.json").read_text(encoding="utf-8")
    }
    assert ours["data"] == theirs["data"]
    assert ours["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_the_prometheus_rule_holds_the_base_rules(default: list[Doc]) -> None:
    expected = _example(DEPLOY / "prometheusrule.yaml")["spec"]
    assert by_kind(default, "PrometheusRule")["spec"] == expected


def test_a_config_change_rolls_the_pod(tmp_path: Path) -> None:
    def checksum(*values: str | Path) -> str:
        pod = workload_of(documents(render_helm(*values)))["spec"]["template"]
        value: str = pod["metadata"]["annotations"][CHECKSUM]
        return value

    same, changed = tmp_path / "same.yaml", tmp_path / "changed.yaml"
    text = (DEPLOY / "config.yaml").read_text(encoding="utf-8")
    same.write_text(text, encoding="utf-8")
    changed.write_text(text.replace("interval: 30s", "interval: 60s"), encoding="utf-8")
    assert checksum() == checksum("--set-file", f"config={same}")
    assert checksum() != checksum("--set-file", f"config={changed}")


# --- other values ------------------------------------------------------------------------------


def test_another_release_name_renames_every_object_and_the_job_label_follows() -> None:
    docs = documents(render_helm(release="prod"))
    assert {doc["metadata"]["name"] for doc in docs} == {
        "prod-dli-batch-monitor",
        "prod-dli-batch-monitor-config",
        "prod-dli-batch-monitor-dashboard",
        "prod-dli-batch-monitor-state",
    }
    rules = yaml.safe_dump(by_kind(docs, "PrometheusRule")["spec"])
    assert 'up{job="prod-dli-batch-monitor"}' in rules
    assert 'job="dli-batch-monitor"' not in rules
    dashboard = next(d for d in docs if d["metadata"]["name"].endswith("-dashboard"))
    text = dashboard["data"]["dli-batch-monitor.json"]
    assert 'job=\\"prod-dli-batch-monitor\\"' in text
    assert 'job=\\"dli-batch-monitor\\"' not in text
    # The credentials Secret keeps the base's name: it is created outside the release.
    volumes = {v["name"]: v for v in pod_spec_of(docs)["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == "dli-batch-monitor-credentials"


@pytest.mark.parametrize(
    ("values", "absent"),
    [
        (_values("serviceMonitor.enabled=false"), "ServiceMonitor"),
        (_values("prometheusRule.enabled=false"), "PrometheusRule"),
        (_values("networkPolicy.enabled=false"), "NetworkPolicy"),
        (_values("serviceAccount.create=false"), "ServiceAccount"),
    ],
)
def test_each_optional_object_can_be_left_out(values: tuple[str, ...], absent: str) -> None:
    docs = documents(render_helm(*values))
    assert absent not in {doc["kind"] for doc in docs}
    assert len(docs) == 8


def test_the_dashboard_can_be_left_out() -> None:
    docs = documents(render_helm(*_values("dashboard.enabled=false")))
    assert not [d for d in docs if d["metadata"]["name"].endswith("-dashboard")]


def test_an_existing_claim_replaces_the_charts_claim() -> None:
    docs = documents(render_helm(*_values("persistence.existingClaim=kept-state")))
    assert "PersistentVolumeClaim" not in {doc["kind"] for doc in docs}
    volumes = {v["name"]: v for v in pod_spec_of(docs)["volumes"]}
    claim = {"claimName": "kept-state"}
    assert volumes["state"] == {"name": "state", "persistentVolumeClaim": claim}


def test_without_persistence_the_state_is_an_empty_dir() -> None:
    docs = documents(render_helm(*_values("persistence.enabled=false")))
    assert "PersistentVolumeClaim" not in {doc["kind"] for doc in docs}
    volumes = {v["name"]: v for v in pod_spec_of(docs)["volumes"]}
    assert volumes["state"] == {"name": "state", "emptyDir": {}}


@pytest.mark.parametrize(("value", "expected"), [("fast", "fast"), ("-", "")])
def test_the_storage_class_is_set_or_explicitly_empty(value: str, expected: str) -> None:
    docs = documents(render_helm("--set", f"persistence.storageClass={value}"))
    assert by_kind(docs, "PersistentVolumeClaim")["spec"]["storageClassName"] == expected


def test_a_config_mapping_works_too_and_the_container_port_follows_server_listen(
    tmp_path: Path,
) -> None:
    config = _example(DEPLOY / "config.yaml")
    config["server"]["listen"] = "[::]:9200"
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"config": config}), encoding="utf-8")
    docs = documents(render_helm("-f", values))
    assert yaml.safe_load(_config_text(docs)) == config
    assert container_of(docs)["ports"][0]["containerPort"] == 9200


def test_the_test_only_secret_is_created_mounted_and_valid(tmp_path: Path) -> None:
    example = _example(BASE_SECRET)
    values = tmp_path / "values.yaml"
    secret = {"create": True, "stringData": example["stringData"]}
    values.write_text(yaml.safe_dump({"secret": secret}), encoding="utf-8")
    rendered = render_helm("-f", values)
    docs = documents(rendered)
    created = by_kind(docs, "Secret")
    assert created["metadata"]["name"] == example["metadata"]["name"]
    assert (created["type"], created["stringData"]) == (example["type"], example["stringData"])
    volumes = {v["name"]: v for v in pod_spec_of(docs)["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == created["metadata"]["name"]
    (tmp_path / "rendered.yaml").write_text(rendered, encoding="utf-8")
    done = run_tool("kubernetes-validate", "--strict", tmp_path / "rendered.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed for resource secret/dli-batch-monitor-credentials" in done.stdout + done.stderr


def test_the_secret_option_is_documented_as_not_for_production() -> None:
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    comment = text.split("\n  create: false", 1)[0].rsplit("existingSecret:", 1)[1]
    assert "NOT FOR PRODUCTION" in comment


# --- ha values: the ha-postgres overlay --------------------------------------------------------


def test_ha_renders_the_overlays_objects_equal_object_by_object(
    ha: list[Doc], overlays: dict[str, list[Doc]]
) -> None:
    ours, theirs = _objects(ha), _objects(overlays["ha"])
    assert sorted(ours) == sorted(theirs)
    for key, expected in theirs.items():
        assert ours[key] == expected, key


def test_ha_runs_two_replicas_rolled_one_at_a_time(ha: list[Doc]) -> None:
    spec = by_kind(ha, "Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }


def test_ha_has_a_disruption_budget_and_spreads_the_pods(ha: list[Doc]) -> None:
    labels = workload_of(ha)["spec"]["template"]["metadata"]["labels"]
    budget = by_kind(ha, "PodDisruptionBudget")["spec"]
    assert budget["minAvailable"] == 1
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    anti = pod_spec_of(ha)["affinity"]["podAntiAffinity"]
    [term] = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()


def test_ha_keeps_nothing_on_a_volume_and_reads_the_password_from_its_secret(
    ha: list[Doc], overlays: dict[str, list[Doc]]
) -> None:
    assert "PersistentVolumeClaim" not in {doc["kind"] for doc in ha}
    assert not [v for v in pod_spec_of(ha)["volumes"] if "persistentVolumeClaim" in v]
    state = yaml.safe_load(_config_text(ha))["state"]
    assert state == yaml.safe_load(_config_text(overlays["ha"]))["state"]
    mounts = {m["mountPath"]: m["name"] for m in container_of(ha)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec_of(ha)["volumes"]}
    assert PurePosixPath(state["password_file"]).parent == PurePosixPath(POSTGRES_DIR)
    secret = volumes[mounts[POSTGRES_DIR]]["secret"]["secretName"]
    assert secret == _example(POSTGRES_SECRET)["metadata"]["name"]
    env = {e["name"]: e for e in container_of(ha)["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_ha_may_reach_the_postgres_port_of_the_url() -> None:
    url = "postgresql://dli_monitor@db.example:6432/dli_monitor"
    docs = documents(render_helm(*_values("ha.enabled=true", f"ha.postgres.url={url}")))
    egress = by_kind(docs, "NetworkPolicy")["spec"]["egress"]
    assert egress[-1] == {"ports": [{"port": 6432, "protocol": "TCP"}]}
    assert yaml.safe_load(_config_text(docs))["state"]["url"] == url


# --- sharding values: the sharded overlay ------------------------------------------------------


def test_sharding_renders_the_overlays_objects_equal_object_by_object(
    sharding: list[Doc], overlays: dict[str, list[Doc]]
) -> None:
    ours, theirs = _objects(sharding), _objects(overlays["sharding"])
    assert sorted(ours) == sorted(theirs)
    for key, expected in theirs.items():
        assert ours[key] == expected, key


def test_sharding_runs_a_statefulset_with_a_claim_per_pod_behind_a_headless_service(
    sharding: list[Doc], overlays: dict[str, list[Doc]]
) -> None:
    ours = by_kind(sharding, "StatefulSet")["spec"]
    theirs = by_kind(overlays["sharding"], "StatefulSet")["spec"]
    assert ours["replicas"] == theirs["replicas"] == 3
    service = by_kind(sharding, "Service")
    assert ours["serviceName"] == theirs["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert _normalise(ours["volumeClaimTemplates"]) == _normalise(theirs["volumeClaimTemplates"])
    assert not [d for d in sharding if d["kind"] in {"Deployment", "PersistentVolumeClaim"}]


def test_sharding_pods_take_their_shard_from_their_name(
    sharding: list[Doc], overlays: dict[str, list[Doc]]
) -> None:
    container = container_of(sharding)
    assert container["env"] == container_of(overlays["sharding"])["env"]
    assert container["args"] == container_of(overlays["sharding"])["args"]
    assert container["args"][-2:] == ["--total-shards", "3"]


def test_the_number_of_shards_sets_replicas_and_total_shards_together() -> None:
    docs = documents(render_helm(*_values("sharding.enabled=true", "sharding.shards=5")))
    workload = by_kind(docs, "StatefulSet")
    assert workload["spec"]["replicas"] == 5
    assert container_of(docs)["args"][-2:] == ["--total-shards", "5"]


def test_sharding_without_persistence_gives_each_pod_an_empty_dir() -> None:
    docs = documents(render_helm(*_values("sharding.enabled=true", "persistence.enabled=false")))
    workload = copy.deepcopy(by_kind(docs, "StatefulSet"))
    assert "volumeClaimTemplates" not in workload["spec"]
    volumes = {v["name"]: v for v in pod_spec_of(docs)["volumes"]}
    assert volumes["state"] == {"name": "state", "emptyDir": {}}


def test_runbook_base_url_moves_every_runbook_url_and_nothing_else(default: list[Doc]) -> None:
    moved = documents(
        render_helm(*_values("prometheusRule.runbookBaseUrl=https://docs.example.com/dli/"))
    )
    (before,) = [d for d in default if d["kind"] == "PrometheusRule"]
    (after,) = [d for d in moved if d["kind"] == "PrometheusRule"]
    rules = [r for g in before["spec"]["groups"] for r in g["rules"] if "alert" in r]
    moved_rules = [r for g in after["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert len(rules) == len(moved_rules) >= 9
    for rule, moved_rule in zip(rules, moved_rules, strict=True):
        anchor = rule["annotations"]["runbook_url"].rsplit("/", 1)[1]
        assert anchor == f"alerts.html#{rule['alert'].lower()}"
        assert moved_rule["annotations"]["runbook_url"] == f"https://docs.example.com/dli/{anchor}"
        assert {**moved_rule, "annotations": {}} == {**rule, "annotations": {}}
