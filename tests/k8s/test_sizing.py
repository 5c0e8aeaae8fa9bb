"""The chart's sizing table holds: each model the artifact store holds, served by its image with the
chart's settings and memory limit, stays under that limit through a burst of concurrent requests.

This is how the table's figures were made (see charts/qwen3/values.yaml): the peak of the
container's memory cgroup while serving `engine.parallel` concurrent requests at the chart's settings.
llama.cpp runs here with its model read into memory instead of memory-mapped (LLAMA_ARG_LOAD_MODE=none):
pages of a mapped file that the host had already cached are charged to another cgroup, so a mapped
model would be under-counted; read into memory, every byte is the container's, which is the most a
pod can be charged (in a pod the init container's copy charges the page cache to the pod). llama.cpp
allocates its whole key-value cache at start, so a burst of prompts longer than one micro-batch
reaches its peak; the ONNX server fills its cache as sequences grow, so its burst fills each
sequence's context. The weights' values do not change memory use: synthetic artifacts measure the
real models' footprint.

Rows whose artifact is not in the store are skipped with the command that makes it. The images come
from scripts/build-images.sh (built once, reused).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from qwen3ops import client
from qwen3ops.paths import default_store
from tests.k8s.chart import CHART, ROOT, one, render, server_container
from tests.k8s.podman import env_of, free_port, hardening, memory_bytes, run

# Loading each model under a full burst takes minutes per row (~25 min for the table on a
# busy 2-core machine): run it on purpose, after a change of settings, engine or images.
SIZING_RUN = os.environ.get("QWEN3_OPS_K8S_SIZING") == "1"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
    pytest.mark.skipif(not SIZING_RUN, reason="measures every sizing row (~25 min): "
                       "QWEN3_OPS_K8S_SIZING=1 .venv/bin/python -m pytest tests/k8s/test_sizing.py -s"),
]

SIZING = yaml.safe_load((CHART / "values.yaml").read_text())["sizing"]
# Where each row's artifact lives in the store (synthetic weights, seed 0), and the command making it.
ARTIFACTS = {
    "llamacpp": ("gguf", "python -m qwen3ops.gguf --checkpoint <checkpoint> --quant {quant}"),
    "ortserver": ("onnx", "python -m qwen3ops.onnx_export --checkpoint <checkpoint> --precision {quant}"),
}
SENTENCE = ("Customer call transcript. Agent: thank you for calling, how can I help? Caller: my bill is wrong "
            "again and I was charged twice for the same month, I want this fixed today. ")
MAX_TOKENS = 32


def long_prompt(tokens: int) -> str:
    """About `tokens` tokens (the project's tokenizer): each request fills its share of the cache."""
    from qwen3ops.tokenizer import count_tokens

    per_sentence = count_tokens(SENTENCE)
    return SENTENCE * max(1, tokens // per_sentence)


def row_ids() -> list[str]:
    return [key for key in SIZING if key.split("/")[1] != "qwen3-tiny"]


def artifact_dir(backend: str, profile: str, quant: str) -> Path:
    kind = ARTIFACTS[backend][0]
    return default_store() / kind / profile / "synthetic-seed0" / quant


def burst(endpoint: client.Endpoint, requests: int, prompt: str) -> list[dict[str, Any]]:
    """`requests` concurrent chat requests, each with its own prefix (no prompt-cache hits)."""
    results: list[dict[str, Any]] = [{} for _ in range(requests)]

    def one_request(i: int) -> None:
        body = {"model": endpoint.model, "max_tokens": MAX_TOKENS, "ignore_eos": True, "temperature": 0,
                "messages": [{"role": "user", "content": f"[{i} {time.time()}] {prompt}"}]}
        try:
            response = httpx.post(endpoint.base + "/v1/chat/completions", json=body, headers=endpoint.headers(),
                                  timeout=900)
            results[i] = {"status": response.status_code, **(response.json().get("usage") or {})}
        except httpx.HTTPError as exc:
            results[i] = {"status": None, "error": repr(exc)}

    threads = [threading.Thread(target=one_request, args=(i,)) for i in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("row", row_ids())
def test_the_sizing_row_holds_under_load(row: str, tmp_path: Path) -> None:
    backend, profile, quant = row.split("/")
    source = artifact_dir(backend, profile, quant)
    if not (source / "manifest.json").is_file():
        pytest.skip(f"no {source}: make it with {ARTIFACTS[backend][1].format(quant=quant)}")
    server_image = run(str(ROOT / "scripts" / "build-images.sh"), backend, timeout=3600).stdout.split()[-1]

    objects = render((), (f"backend={backend}", f"model.profile={profile}", f"model.quant={quant}",
                          "model.synthetic=true"))
    deployment = one(objects, "Deployment")
    server = server_container(deployment)
    engine = one(objects, "ConfigMap", "-engine")["data"]
    limit = memory_bytes(server["resources"]["limits"]["memory"])

    # The model volume as the init container leaves it: the artifact under <volume>/<model dir>,
    # world-readable (hard links, no copy), with model.gguf for llama.cpp.
    target = engine.get("LLAMA_ARG_MODEL") or engine["QWEN3_ORT_MODEL"]
    model_dir = tmp_path / "models" / target.removeprefix("/models/").split("/")[0]
    model_dir.parent.mkdir()
    shutil.copytree(source, model_dir, copy_function=lambda s, d: Path(d).hardlink_to(s))
    model_dir.chmod(0o755)
    model_dir.parent.chmod(0o755)
    if backend == "llamacpp":
        gguf = json.loads((source / "manifest.json").read_text())["gguf_file"]
        (model_dir / "model.gguf").symlink_to(gguf)

    name = f"qwen3-k8s-sizing-{backend}-{profile}-{quant}".replace(".", "")
    port = free_port()
    env_file = tmp_path / "server.env"
    env = {**engine, **env_of(server)}
    if backend == "llamacpp":
        env["LLAMA_ARG_LOAD_MODE"] = "none"  # every byte of the model charged to this container
    env.pop("LLAMA_ARG_API_KEY_FILE", None)
    env.pop("QWEN3_ORT_API_KEY_FILE", None)
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    run("podman", "rm", "-f", name, check=False)
    run("podman", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", *hardening(server["securityContext"]),
        "-v", f"{tmp_path / 'models'}:/models:ro", "--memory", str(limit), "--memory-swap", str(limit),
        "--cpus", str(server["resources"]["requests"]["cpu"]), "--env-file", str(env_file), server_image)
    try:
        url = f"http://127.0.0.1:{port}"
        readiness = server["readinessProbe"]["httpGet"]["path"]
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + readiness, timeout=3).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            state = run("podman", "inspect", "--format", "{{.State.Running}} {{.State.OOMKilled}}", name).stdout
            assert state.startswith("true"), f"the server died while loading ({state.strip()}):\n" + \
                run("podman", "logs", name, check=False).stderr[-3000:]
            assert time.monotonic() < deadline, "the model did not load within 300 s"
            time.sleep(1)
        loaded = int(run("podman", "exec", name, "/bin/sh", "-c",
                         "cat /sys/fs/cgroup/memory.peak 2>/dev/null || "
                         "cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes").stdout.strip())
        alias = engine.get("LLAMA_ARG_ALIAS") or engine["QWEN3_ORT_MODEL_NAME"]
        endpoint = client.Endpoint(url, model=alias)
        parallel = int(engine.get("LLAMA_ARG_N_PARALLEL") or engine["QWEN3_ORT_MAX_BATCH_SIZE"])
        per_request = int(engine.get("LLAMA_ARG_CTX_SIZE") or 0) // parallel or int(engine["QWEN3_ORT_CONTEXT_LENGTH"])
        ubatch = int(engine.get("LLAMA_ARG_UBATCH") or 0)
        prompt = long_prompt(min(per_request - MAX_TOKENS - 64, ubatch + 128) if ubatch
                             else per_request - MAX_TOKENS - 64)
        started = time.monotonic()
        results = burst(endpoint, parallel, prompt)
        took = time.monotonic() - started
        state = run("podman", "inspect", "--format", "{{.State.Running}} {{.State.OOMKilled}}", name).stdout.split()
        assert state == ["true", "false"], f"the server was killed under load (state {state}): {results}"
        assert all(r["status"] == 200 for r in results), results
        peak = int(run("podman", "exec", name, "/bin/sh", "-c",
                       "cat /sys/fs/cgroup/memory.peak 2>/dev/null || "
                       "cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes").stdout.strip())
        report = {"row": row, "limit_mib": limit // 2**20, "peak_after_load_mib": round(loaded / 2**20),
                  "peak_under_load_mib": round(peak / 2**20), "requests": len(results),
                  "prompt_tokens": results[0].get("prompt_tokens"), "seconds": round(took, 1),
                  "tokens_per_request": per_request,
                  "parallel": parallel}
        print("\nsizing " + json.dumps(report), file=sys.stderr)
        assert peak < limit
    finally:
        run("podman", "rm", "-f", name, check=False)
