"""The Helm chart, rendered by the real helm binary: lint, Kubernetes schemas, and the promises of a
production deployment (probes, resources, rolling updates, security, disruption budget)."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.k8s.chart import (
    CHART,
    CI_VALUES,
    KUBE_VERSIONS,
    ROOT,
    find,
    helm,
    one,
    problems,
    render,
    server_container,
)

VALUE_SETS = [(), *[(path,) for path in CI_VALUES]]
VALUE_IDS = ["default", *[path.name.removesuffix("-values.yaml") for path in CI_VALUES]]


def test_ci_values_cover_both_backends_and_the_options() -> None:
    names = {path.name for path in CI_VALUES}
    assert {"llamacpp-values.yaml", "ortserver-values.yaml", "ingress-hpa-servicemonitor-values.yaml"} <= names


@pytest.mark.parametrize("values", VALUE_SETS, ids=VALUE_IDS)
def test_helm_lint_strict(values: tuple[Path, ...]) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in values:
        args += ["-f", str(path)]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", VALUE_SETS, ids=VALUE_IDS)
def test_rendered_objects_keep_the_production_promises(values: tuple[Path, ...]) -> None:
    assert problems(render(values)) == []


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", VALUE_SETS, ids=VALUE_IDS)
def test_manifests_validate_against_kubernetes(values: tuple[Path, ...], version: str) -> None:
    """Every object against the official schemas of this Kubernetes version, unknown fields rejected.
    CRD-based kinds (ServiceMonitor) have no bundled schema: test_servicemonitor checks them."""
    checked = 0
    for obj in render(values):
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} is invalid for Kubernetes {version}: {exc.message} "
                        f"at {'.'.join(str(p) for p in exc.path)}")
        checked += 1
    assert checked >= 7


def test_the_kubernetes_validation_rejects_a_wrong_manifest() -> None:
    """The validator really checks: an unknown field and a wrong type are refused."""
    deployment = copy.deepcopy(one(render(), "Deployment"))
    server_container(deployment)["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)
    deployment = copy.deepcopy(one(render(), "Deployment"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


# --- the checks bite: each broken promise is reported ------------------------------------------


def _broken(mutate: Any) -> list[str]:
    objects = [copy.deepcopy(o) for o in render()]
    mutate(objects)
    return problems(objects)


def _server(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return server_container(one(objects, "Deployment"))


BREAKAGES = {
    "startup probe": (lambda o: _server(o).pop("startupProbe"), "startupProbe is missing"),
    "readiness probe": (lambda o: _server(o).pop("readinessProbe"), "readinessProbe is missing"),
    "liveness probe": (lambda o: _server(o).pop("livenessProbe"), "livenessProbe is missing"),
    "memory limit": (lambda o: _server(o)["resources"]["limits"].pop("memory"), "resources.limits.memory"),
    "memory request": (lambda o: _server(o)["resources"]["requests"].pop("memory"), "resources.requests.memory"),
    "maxUnavailable": (lambda o: one(o, "Deployment")["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable=1),
                       "maxUnavailable is 1"),
    "strategy": (lambda o: one(o, "Deployment")["spec"].update(strategy={"type": "Recreate"}), "not RollingUpdate"),
    "read-only root": (lambda o: _server(o)["securityContext"].update(readOnlyRootFilesystem=False),
                       "readOnlyRootFilesystem"),
    "capabilities": (lambda o: _server(o)["securityContext"].pop("capabilities"), "capabilities.drop lacks ALL"),
    "non-root": (lambda o: one(o, "Deployment")["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot"),
                 "pod: securityContext.runAsNonRoot"),
    "seccomp": (lambda o: _server(o)["securityContext"].pop("seccompProfile"), "seccompProfile"),
    "privilege escalation": (lambda o: _server(o)["securityContext"].update(allowPrivilegeEscalation=True),
                             "allowPrivilegeEscalation"),
    "preStop": (lambda o: _server(o).pop("lifecycle"), "preStop"),
    "grace period": (lambda o: one(o, "Deployment")["spec"]["template"]["spec"].update(
        terminationGracePeriodSeconds=30), "terminationGracePeriodSeconds 30"),
    "PDB": (lambda o: o.remove(one(o, "PodDisruptionBudget")), "expected one PodDisruptionBudget, found 0"),
    "PDB selector": (lambda o: one(o, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].update(
        {"app.kubernetes.io/name": "other"}), "does not select"),
}


@pytest.mark.parametrize("what", list(BREAKAGES))
def test_each_check_fails_when_its_promise_is_broken(what: str) -> None:
    mutate, message = BREAKAGES[what]
    found = _broken(mutate)
    assert any(message in p for p in found), found


@pytest.mark.parametrize(("sets", "message"), [
    (("probes.readiness.enabled=false",), "readinessProbe is missing"),
    (("probes.startup.enabled=false",), "startupProbe is missing"),
    (("podDisruptionBudget.enabled=false",), "expected one PodDisruptionBudget, found 0"),
])
def test_turning_a_promise_off_in_values_is_reported(sets: tuple[str, ...], message: str) -> None:
    assert any(message in p for p in problems(render((), sets)))


# --- what the default values render ------------------------------------------------------------


def test_default_deployment_serves_llamacpp_with_honest_probes() -> None:
    objects = render()
    deployment = one(objects, "Deployment")
    server = server_container(deployment)
    assert server["image"] == "qwen3-ops/llamacpp:0.1.0"
    assert server["startupProbe"]["httpGet"]["path"] == "/health"  # 503 while the model loads
    assert server["readinessProbe"]["httpGet"]["path"] == "/health"
    assert server["livenessProbe"]["httpGet"]["path"] == "/health"
    assert server["startupProbe"]["failureThreshold"] * server["startupProbe"]["periodSeconds"] >= 300
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    # Sized from the table for llamacpp/qwen3-0.6b/q4_k_m; memory request == limit.
    assert server["resources"]["requests"]["memory"] == server["resources"]["limits"]["memory"]
    assert "cpu" not in server["resources"]["limits"]


def test_ortserver_readiness_means_the_model_answers() -> None:
    server = server_container(one(render((CHART / "ci" / "ortserver-values.yaml",)), "Deployment"))
    assert server["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/health"
    assert server["image"] == "qwen3-ops/ortserver:0.1.0"


def test_engine_settings_are_in_the_configmap_and_mirror_the_role_defaults() -> None:
    data = one(render(), "ConfigMap", "-engine")["data"]
    role = yaml.safe_load((ROOT / "roles" / "llamacpp_server" / "defaults" / "main.yml").read_text())
    assert data["LLAMA_ARG_MODEL"] == "/models/qwen3-0.6b-q4_k_m/model.gguf"
    assert data["LLAMA_ARG_ALIAS"] == "qwen3-0.6b-q4_k_m"
    assert data["LLAMA_ARG_N_PARALLEL"] == str(role["llamacpp_server_parallel"])
    assert data["LLAMA_ARG_CTX_SIZE"] == str(role["llamacpp_server_ctx_size"])
    assert data["LLAMA_ARG_BATCH"] == str(role["llamacpp_server_batch_size"])
    assert data["LLAMA_ARG_UBATCH"] == str(role["llamacpp_server_ubatch_size"])
    assert data["LLAMA_ARG_CACHE_TYPE_K"] == role["llamacpp_server_cache_type_k"]
    assert data["LLAMA_ARG_FLASH_ATTN"] == role["llamacpp_server_flash_attn"]
    assert data["LLAMA_ARG_ENDPOINT_METRICS"] == "1"
    # Threads follow the CPU the container may use (the sizing table's request: 2).
    assert data["LLAMA_ARG_THREADS"] == "2"
    assert all(isinstance(v, str) for v in data.values())


def test_threads_follow_the_cpu_limit() -> None:
    data = one(render((), ("resources.requests.cpu=1500m", "resources.requests.memory=1Gi",
                           "resources.limits.memory=1Gi", "resources.limits.cpu=3")), "ConfigMap", "-engine")["data"]
    assert data["LLAMA_ARG_THREADS"] == "3"
    data = one(render((), ("resources.requests.cpu=1500m", "resources.requests.memory=1Gi",
                           "resources.limits.memory=1Gi")), "ConfigMap", "-engine")["data"]
    assert data["LLAMA_ARG_THREADS"] == "2"


def test_a_changed_setting_rolls_the_pods() -> None:
    before = one(render(), "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/engine"]
    after = one(render((), ("engine.parallel=8",)), "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert after["checksum/engine"] != before


def test_service_has_named_ports_and_selects_only_the_servers() -> None:
    objects = render()
    service = one(objects, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    assert all(pod_labels[k] == v for k, v in selector.items())
    test_pod = one(objects, "Pod")
    assert not all(test_pod["metadata"]["labels"].get(k) == v for k, v in selector.items()), \
        "the Service would route clients to the test pod"


def test_chart_test_pod_sends_a_real_completion() -> None:
    objects = render()
    pod = one(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["BASE_URL"] == "http://qwen3.qwen3.svc:8080"
    assert env["MODEL_NAME"] == "qwen3-0.6b-q4_k_m"
    scripts = one(objects, "ConfigMap", "-scripts")["data"]
    assert "/v1/chat/completions" in scripts["test-completion.sh"]
    assert container["command"] == ["/bin/sh", "/scripts/test-completion.sh"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_scripts_in_the_configmap_are_the_chart_files() -> None:
    scripts = one(render(), "ConfigMap", "-scripts")["data"]
    for name in ("model-init.sh", "drain.sh", "test-completion.sh"):
        assert scripts[name] == (CHART / "files" / name).read_text()


def test_default_model_comes_from_the_model_image_into_a_pod_volume() -> None:
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    assert init["image"] == "qwen3-ops/llamacpp:0.1.0-qwen3-0.6b-q4_k_m"
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["METHOD"] == "copy"
    assert env["MODEL_DIR_NAME"] == "qwen3-0.6b-q4_k_m"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["model"]
    mounts = {m["name"]: m for m in server_container(one(render(), "Deployment"))["volumeMounts"]}
    assert mounts["model"]["readOnly"] is True


def test_pvc_storage_is_kept_across_uninstall() -> None:
    objects = render((CHART / "ci" / "ortserver-values.yaml",))
    claim = one(objects, "PersistentVolumeClaim")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    init = one(objects, "Deployment")["spec"]["template"]["spec"]["initContainers"][0]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["METHOD"] == "download"
    assert env["DOWNLOAD_URL"].startswith("https://")


def test_baked_model_needs_no_volume_and_no_init() -> None:
    pod = one(render((CHART / "ci" / "baked-values.yaml",)), "Deployment")["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert "model" not in {v["name"] for v in pod["volumes"]}
    assert one(render((CHART / "ci" / "baked-values.yaml",)), "ConfigMap", "-engine")["data"]["QWEN3_ORT_MODEL"] \
        == "/opt/qwen3/model"


def test_hpa_scales_on_cpu_and_queue_depth() -> None:
    objects = render((CHART / "ci" / "ingress-hpa-servicemonitor-values.yaml",))
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(objects, "Deployment")["metadata"]["name"]
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["target"]["averageUtilization"] == 75
    assert metrics["Pods"]["pods"]["metric"]["name"] == "llamacpp_requests_deferred"
    assert "replicas" not in one(objects, "Deployment")["spec"], "the HPA owns the replica count"
    assert find(render(), "HorizontalPodAutoscaler") == []


def test_ingress_has_host_path_and_tls() -> None:
    ingress = one(render((CHART / "ci" / "ingress-hpa-servicemonitor-values.yaml",)), "Ingress")
    assert ingress["spec"]["tls"] == [{"secretName": "qwen3-example-com-tls", "hosts": ["qwen3.example.com"]}]
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "qwen3.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"]["port"]["name"] == "http"


def test_servicemonitor_scrapes_the_named_port_with_the_api_key() -> None:
    objects = render((CHART / "ci" / "ingress-hpa-servicemonitor-values.yaml",))
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] in {p["name"] for p in one(objects, "Service")["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    service_labels = one(objects, "Service")["metadata"]["labels"]
    assert all(service_labels[k] == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    # llama-server's /metrics needs the API key; the credentials come from the chart's Secret.
    secret = one(objects, "Secret")
    assert endpoint["authorization"]["credentials"] == {"name": secret["metadata"]["name"], "key": "api-key"}


def test_existing_secret_is_used_and_none_is_created() -> None:
    objects = render((CHART / "ci" / "ortserver-values.yaml",))
    assert find(objects, "Secret") == []
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "api-key")
    assert volume["secret"]["secretName"] == "qwen3-api-key"
    env = {e["name"]: e.get("value") for e in server_container(one(objects, "Deployment"))["env"]}
    assert env["QWEN3_ORT_API_KEY_FILE"] == "/etc/qwen3/api-key/token"


def test_given_api_key_lands_in_the_secret() -> None:
    secret = one(render((CHART / "ci" / "llamacpp-values.yaml",)), "Secret")
    assert base64.b64decode(secret["data"]["api-key"]).decode() == "ci-not-a-secret"


def test_grace_period_shorter_than_the_longest_request_is_refused() -> None:
    result = helm(*["template", "q", str(CHART), "--set", "lifecycle.terminationGracePeriodSeconds=120"])
    assert result.returncode != 0
    assert "must exceed drainDelaySeconds + requestTimeoutSeconds (310)" in result.stderr


def test_a_model_without_sizing_asks_for_resources() -> None:
    result = helm(*["template", "q", str(CHART), "--set", "backend=ortserver", "--set", "model.quant=int8",
                    "--set", "model.profile=qwen3-1.7b"])
    assert result.returncode != 0
    assert "no sizing for ortserver/qwen3-1.7b/int8" in result.stderr


def test_notes_say_how_to_reach_the_service() -> None:
    result = helm("install", "qwen3", str(CHART), "--dry-run=client", "--namespace", "qwen3")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "kubectl -n qwen3 port-forward service/qwen3 8080:8080" in notes
    assert "helm test qwen3 -n qwen3" in notes
    assert "/v1/chat/completions" in notes


def test_chart_version_matches_the_project() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    namespace: dict[str, Any] = {}
    exec((ROOT / "qwen3ops" / "__init__.py").read_text(), namespace)
    assert chart["appVersion"] == namespace["__version__"], "the images are tagged with the project version"


def test_values_schema_is_valid_json_schema() -> None:
    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)


def test_get_helm_installs_the_pinned_checksummed_binary() -> None:
    import subprocess

    first = subprocess.run([str(ROOT / "scripts" / "get-helm.sh")], capture_output=True, text=True, check=True)
    again = subprocess.run([str(ROOT / "scripts" / "get-helm.sh"), "--print"], capture_output=True, text=True,
                           check=True)
    assert first.stdout == again.stdout, "a second run must reuse the cached binary"
    assert "fetching" not in again.stderr
    assert helm("version", "--short").stdout.startswith("v4.1.4")
