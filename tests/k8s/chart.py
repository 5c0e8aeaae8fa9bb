"""Render the Helm chart with the real helm binary and check what a production deployment needs.

`problems(objects)` is the list of promises the chart makes (probes on real endpoints, memory
requests and limits, a RollingUpdate that never removes a serving pod first, restrictive security
contexts, a preStop drain, a PodDisruptionBudget that covers the pods): each test over rendered
objects asserts it is empty, and tests/k8s/test_chart.py proves that each check fires when its
promise is broken.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "qwen3"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
# Kubernetes minor versions the manifests are validated against (oldest supported, middle, recent).
KUBE_VERSIONS = ("1.29.0", "1.31.0", "1.33.0")


@functools.cache
def helm_binary() -> str:
    """The pinned helm (scripts/get-helm.sh installs it once, checksummed, and prints its path)."""
    result = subprocess.run([str(ROOT / "scripts" / "get-helm.sh")], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/get-helm.sh failed: {result.stderr.strip()}")
    return result.stdout.strip().splitlines()[-1]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, check=False, cwd=ROOT)


def template_args(values_files: tuple[Path, ...] = (), sets: tuple[str, ...] = ()) -> list[str]:
    args = ["template", "qwen3", str(CHART), "--namespace", "qwen3"]
    for path in values_files:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return args


@functools.cache
def render(values_files: tuple[Path, ...] = (), sets: tuple[str, ...] = ()) -> tuple[dict[str, Any], ...]:
    """The chart's objects for these values (hooks included, as `helm template` prints them)."""
    result = helm(*template_args(values_files, sets))
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def find(objects: tuple[dict[str, Any], ...] | list[dict[str, Any]], kind: str,
         name_suffix: str = "") -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)]


def one(objects: tuple[dict[str, Any], ...] | list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    found = find(objects, kind, name_suffix)
    assert len(found) == 1, f"expected one {kind}*{name_suffix}, found {len(found)}"
    return found[0]


def server_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "server")


def _container_security(where: str, ctx: dict[str, Any] | None) -> list[str]:
    ctx = ctx or {}
    out = []
    if ctx.get("runAsNonRoot") is not True:
        out.append(f"{where}: securityContext.runAsNonRoot is not true")
    if ctx.get("allowPrivilegeEscalation") is not False:
        out.append(f"{where}: securityContext.allowPrivilegeEscalation is not false")
    if ctx.get("readOnlyRootFilesystem") is not True:
        out.append(f"{where}: securityContext.readOnlyRootFilesystem is not true")
    if "ALL" not in (ctx.get("capabilities") or {}).get("drop", []):
        out.append(f"{where}: securityContext.capabilities.drop lacks ALL")
    if (ctx.get("capabilities") or {}).get("add"):
        out.append(f"{where}: securityContext.capabilities.add is not empty")
    if (ctx.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        out.append(f"{where}: securityContext.seccompProfile.type is not RuntimeDefault")
    return out


def problems(objects: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> list[str]:
    """What is missing for a deployment that scales, updates without dropping requests and tells the
    truth in its probes; [] when nothing is."""
    out: list[str] = []
    deployments = find(objects, "Deployment")
    if len(deployments) != 1:
        return [f"expected one Deployment, found {len(deployments)}"]
    deployment = deployments[0]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]

    strategy = spec.get("strategy") or {}
    if strategy.get("type") != "RollingUpdate":
        out.append("strategy.type is not RollingUpdate")
    rolling = strategy.get("rollingUpdate") or {}
    if rolling.get("maxUnavailable") != 0:
        out.append(f"strategy.rollingUpdate.maxUnavailable is {rolling.get('maxUnavailable')!r}, not 0")
    if not rolling.get("maxSurge"):
        out.append("strategy.rollingUpdate.maxSurge is 0: an update could never start a replacement")

    try:
        server = server_container(deployment)
    except StopIteration:
        return [*out, "no container named server"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = (server.get(probe) or {}).get("httpGet") or {}
        if not get.get("path"):
            out.append(f"server: {probe} is missing (or not an HTTP check)")
        elif get.get("port") not in ("http", server["ports"][0]["containerPort"]):
            out.append(f"server: {probe} checks port {get.get('port')!r}, not the server's")
    resources = server.get("resources") or {}
    for section in ("requests", "limits"):
        if not (resources.get(section) or {}).get("memory"):
            out.append(f"server: resources.{section}.memory is missing")
    if not (resources.get("requests") or {}).get("cpu"):
        out.append("server: resources.requests.cpu is missing")
    if not ((server.get("lifecycle") or {}).get("preStop") or {}).get("exec"):
        out.append("server: lifecycle.preStop (the drain) is missing")
    out += _container_security("server", server.get("securityContext"))
    for init in pod.get("initContainers") or []:
        out += _container_security(f"init container {init['name']}", init.get("securityContext"))
        if not (init.get("resources") or {}).get("limits", {}).get("memory"):
            out.append(f"init container {init['name']}: resources.limits.memory is missing")

    pod_ctx = pod.get("securityContext") or {}
    if pod_ctx.get("runAsNonRoot") is not True:
        out.append("pod: securityContext.runAsNonRoot is not true")
    if (pod_ctx.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        out.append("pod: securityContext.seccompProfile.type is not RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        out.append("pod: automountServiceAccountToken is not false")

    grace = pod.get("terminationGracePeriodSeconds") or 30
    env = {e["name"]: e.get("value") for e in server.get("env") or []}
    longest = int(env.get("DRAIN_DELAY") or 0) + int(env.get("REQUEST_TIMEOUT") or 0)
    if grace <= longest:
        out.append(f"pod: terminationGracePeriodSeconds {grace} does not exceed drain + longest request ({longest})")

    labels = spec["template"]["metadata"]["labels"]
    pdbs = find(objects, "PodDisruptionBudget")
    if len(pdbs) != 1:
        out.append(f"expected one PodDisruptionBudget, found {len(pdbs)}")
    else:
        selector = pdbs[0]["spec"]["selector"]["matchLabels"]
        if any(labels.get(k) != v for k, v in selector.items()):
            out.append("the PodDisruptionBudget does not select the Deployment's pods")
    return out
