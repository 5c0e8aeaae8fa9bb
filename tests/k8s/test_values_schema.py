"""values.schema.json: helm refuses wrong values before rendering anything, and says where and why."""

from __future__ import annotations

import pytest

from tests.k8s.chart import CHART, helm

# (--set arguments, what helm's message must contain)
BAD_VALUES = {
    "unknown backend": (["backend=vllm"], "at '/backend': value must be one of 'llamacpp', 'ortserver'"),
    "GGUF quant on ONNX": (["backend=ortserver"], "at '/model/quant': value must be one of 'fp32', 'int8', 'int4'"),
    "ONNX quant on llama.cpp": (["model.quant=int4"],
                                "at '/model/quant': value must be one of 'f16', 'q8_0', 'q4_k_m'"),
    "unknown profile": (["model.profile=qwen3-8b"], "at '/model/profile'"),
    "maxUnavailable": (["updateStrategy.rollingUpdate.maxUnavailable=1"],
                       "at '/updateStrategy/rollingUpdate/maxUnavailable': value must be 0"),
    "writable root": (["securityContext.readOnlyRootFilesystem=false"],
                      "at '/securityContext/readOnlyRootFilesystem': value must be true"),
    "root user": (["podSecurityContext.runAsNonRoot=false"],
                  "at '/podSecurityContext/runAsNonRoot': value must be true"),
    "privilege escalation": (["securityContext.allowPrivilegeEscalation=true"],
                             "at '/securityContext/allowPrivilegeEscalation': value must be false"),
    "unknown key": (["replicas=3"], "additional properties 'replicas' not allowed"),
    "typo in a nested key": (["probes.readiness.periodSecond=5"], "additional properties 'periodSecond' not allowed"),
    "wrong type": (["replicaCount=two"], "at '/replicaCount': got string, want integer"),
    "zero replicas": (["replicaCount=0"], "at '/replicaCount': minimum"),
    "memory quantity": (["resources.limits.memory=lots"], "at '/resources/limits/memory'"),
    "storage type": (["model.storage.type=nfs"], "at '/model/storage/type'"),
    "download without a URL": (["model.init.method=download"], "at '/model/init/download/url'"),
    "command without a command": (["model.init.method=command"], "at '/model/init/command"),
    "ingress without hosts": (["ingress.enabled=true"], "at '/ingress/hosts'"),
    "bad sha256": (["model.sha256=abc"], "at '/model/sha256'"),
    "model dir with a slash": (["model.dir=../etc"], "at '/model/dir'"),
    "privileged port": (["containerPort=80"], "at '/containerPort': minimum"),
    "KV cache type": (["engine.llamacpp.cacheTypeK=q3"], "at '/engine/llamacpp/cacheTypeK'"),
    "CPU target above 100": (["autoscaling.targetCPUUtilizationPercentage=150"],
                             "at '/autoscaling/targetCPUUtilizationPercentage': maximum"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_values_are_rejected_with_a_clear_message(case: str) -> None:
    sets, message = BAD_VALUES[case]
    args = ["template", "q", str(CHART)]
    for item in sets:
        args += ["--set", item]
    result = helm(*args)
    assert result.returncode != 0, f"helm accepted {sets}"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_good_values_pass_the_schema() -> None:
    result = helm("template", "q", str(CHART), "--set", "backend=ortserver", "--set", "model.quant=int4",
                  "--set", "autoscaling.enabled=true", "--set", "replicaCount=3")
    assert result.returncode == 0, result.stderr
