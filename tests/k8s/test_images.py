"""The container images, built with podman and run the way the chart runs them: a pod without a cluster.

For each backend: build (or reuse) the server image and a model image holding the tiny Qwen3 model
(synthetic weights), render the chart, then play the pod with podman exactly as rendered: the init
container copies the model into the pod's volume, the server starts with the ConfigMap's settings,
the Secret's API key and the rendered security context (user 10001, read-only root, no
capabilities, no privilege escalation) and memory limit; we wait for the probes' endpoints, ask for a
completion through the project's client, read /metrics, run the chart's test pod and preStop drain,
stop the server gracefully and check the init container does nothing the second time.

Images are built once and reused (scripts/build-images.sh skips a tag whose inputs are unchanged):
the first llama.cpp build takes ~7-13 minutes on 2 cores, later runs seconds.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import shutil
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qwen3ops import client
from tests.k8s.chart import CHART, ROOT, one, render, server_container
from tests.k8s.podman import env_of, free_port, hardening, last_json_line, memory_bytes, run

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None,
    reason="podman is not installed (apt-get install podman runc; then scripts/build-test-images.sh)")

CI_VALUES = (CHART / "ci" / "llamacpp-values.yaml",)
SETS = {"llamacpp": (), "ortserver": ("backend=ortserver", "model.quant=int4")}


@pytest.fixture(scope="module")
def tiny_checkpoint() -> str:
    out = run(sys.executable, "-m", "qwen3ops.provision", "model", "--profile", "qwen3-tiny", "--source", "synthetic",
              "--json").stdout
    return last_json_line(out)["path"]


def model_artifact(backend: str, checkpoint: str) -> str:
    """The tiny model's artifact for this backend, made (once, cached in the store) by the project's CLIs."""
    if backend == "llamacpp":
        out = run(sys.executable, "-m", "qwen3ops.gguf", "--checkpoint", checkpoint, "--quant", "f16", "--json").stdout
        return last_json_line(out)["paths"]["f16"]
    out = run(sys.executable, "-m", "qwen3ops.onnx_export", "--checkpoint", checkpoint, "--precision", "int4",
              "--json", timeout=1800).stdout
    return last_json_line(out)["paths"]["int4"]


def build_images(backend: str, artifact: str) -> tuple[str, str, float]:
    """(server image, model image, seconds): built by scripts/build-images.sh, or reused."""
    started = time.monotonic()
    server = run(str(ROOT / "scripts" / "build-images.sh"), backend, timeout=3600).stdout.split()[-1]
    model = run(str(ROOT / "scripts" / "build-images.sh"), "--bake-model", artifact, timeout=3600).stdout.split()[-1]
    return server, model, time.monotonic() - started


class Pod:
    """One rendered pod, played by podman: a podman pod sharing the network like a Kubernetes pod."""

    def __init__(self, backend: str, objects: tuple[dict[str, Any], ...], workdir: Path) -> None:
        self.backend = backend
        self.objects = objects
        self.deployment = one(objects, "Deployment")
        self.spec = self.deployment["spec"]["template"]["spec"]
        self.server = server_container(self.deployment)
        self.name = f"qwen3-k8s-test-{backend}-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.models = workdir / "models"
        self.scripts = workdir / "scripts"
        self.secret = workdir / "api-key"
        self.api_key = ""

    def prepare(self) -> None:
        """The volumes: an empty model volume writable by the pod's fsGroup, the scripts ConfigMap and
        the API key Secret as files."""
        self.models.mkdir()
        owner = f"{self.spec['securityContext']['runAsUser']}:{self.spec['securityContext']['fsGroup']}"
        if os.geteuid() == 0:
            shutil.chown(self.models, *map(int, owner.split(":")))
        else:
            run("podman", "unshare", "chown", owner, str(self.models))
        self.scripts.mkdir()
        for name, text in one(self.objects, "ConfigMap", "-scripts")["data"].items():
            path = self.scripts / name
            path.write_text(text)
            path.chmod(0o555)
        self.secret.mkdir()
        secret = one(self.objects, "Secret")
        for key, value in secret["data"].items():
            (self.secret / key).write_text(base64.b64decode(value).decode())
            (self.secret / key).chmod(0o444)
            self.api_key = base64.b64decode(value).decode()

    def volume_args(self, container: dict[str, Any]) -> list[str]:
        mounts = {"model": self.models, "scripts": self.scripts, "api-key": self.secret}
        args = []
        for mount in container.get("volumeMounts") or []:
            if mount["name"] == "tmp":
                continue
            source = mounts[mount["name"]]
            args += ["-v", f"{source}:{mount['mountPath']}:{'ro' if mount.get('readOnly') else 'rw'}"]
        return args

    def run_init(self) -> str:
        init = self.spec["initContainers"][0]
        argv = ["podman", "run", "--rm", "--name", f"{self.name}-init", *hardening(init["securityContext"]),
                *self.volume_args(init), "--memory", init["resources"]["limits"]["memory"].replace("Mi", "m")]
        for key, value in env_of(init).items():
            argv += ["-e", f"{key}={value}"]
        argv += ["--entrypoint", init["command"][0], init["image"], *init["command"][1:], *init.get("args", [])]
        return run(*argv, timeout=300).stdout

    def start(self, overrides: dict[str, str] | None = None) -> None:
        """The server container as rendered (ConfigMap, env, mounts, security context, memory limit),
        in a fresh podman pod; `overrides` changes engine settings (a test's own variant)."""
        run("podman", "pod", "rm", "-f", self.name, check=False)
        run("podman", "pod", "create", "--name", self.name, "-p", f"127.0.0.1:{self.port}:8080")
        env = {**one(self.objects, "ConfigMap", "-engine")["data"], **env_of(self.server), **(overrides or {})}
        env_file = self.workdir / "server.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        limit = memory_bytes(self.server["resources"]["limits"]["memory"])
        run("podman", "run", "-d", "--pod", self.name, "--name", f"{self.name}-server",
            *hardening(self.server["securityContext"]), *self.volume_args(self.server),
            "--memory", str(limit), "--memory-swap", str(limit), "--env-file", str(env_file), self.server["image"])

    def wait_ready(self) -> list[int]:
        """Poll the startup probe's, then the readiness probe's path within the startup budget; the
        status codes seen on the way."""
        startup = self.server["startupProbe"]
        deadline = time.monotonic() + startup["periodSeconds"] * startup["failureThreshold"]
        seen: list[int] = []
        for probe in ("startupProbe", "readinessProbe"):
            path = self.server[probe]["httpGet"]["path"]
            while True:
                try:
                    code = httpx.get(self.url + path, timeout=3).status_code
                except httpx.HTTPError:
                    code = 0
                if not seen or seen[-1] != code:
                    seen.append(code)
                if code == 200:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"{path} never answered 200 (seen {seen}); logs:\n{self.logs()}")
                time.sleep(0.5)
        return seen

    def exec_server(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        args = ["podman", "exec"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        return run(*args, f"{self.name}-server", *argv, check=False, timeout=600)

    def memory_peak(self) -> int:
        out = self.exec_server(["/bin/sh", "-c", "cat /sys/fs/cgroup/memory.peak 2>/dev/null || "
                                "cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes"]).stdout.strip()
        return int(out or 0)

    def run_chart_test(self) -> subprocess.CompletedProcess[str]:
        test_pod = one(self.objects, "Pod")
        container = test_pod["spec"]["containers"][0]
        env = {**env_of(container), "BASE_URL": "http://127.0.0.1:8080"}  # the Service, inside the pod
        argv = ["podman", "run", "--rm", "--pod", self.name, *hardening(container["securityContext"]),
                *self.volume_args(container)]
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        argv += ["--entrypoint", container["command"][0], container["image"], *container["command"][1:]]
        return run(*argv, check=False, timeout=300)

    def stop(self) -> int:
        grace = self.spec["terminationGracePeriodSeconds"]
        run("podman", "stop", "-t", str(grace), f"{self.name}-server", timeout=grace + 30)
        state = run("podman", "inspect", "--format", "{{.State.ExitCode}}", f"{self.name}-server").stdout
        return int(state.strip())

    def logs(self) -> str:
        result = run("podman", "logs", f"{self.name}-server", check=False)
        return (result.stdout + result.stderr)[-4000:]

    def remove(self) -> None:
        run("podman", "pod", "rm", "-f", self.name, check=False)
        if os.geteuid() != 0:
            run("podman", "unshare", "rm", "-rf", str(self.models), check=False)


@pytest.fixture(scope="module", params=["llamacpp", "ortserver"])
def pod(request: pytest.FixtureRequest, tiny_checkpoint: str,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    backend = request.param
    artifact = model_artifact(backend, tiny_checkpoint)
    server_image, model_image, seconds = build_images(backend, artifact)
    print(f"\n{backend}: images {server_image}, {model_image} ready in {seconds:.0f} s", file=sys.stderr)
    objects = render(CI_VALUES, SETS[backend])
    deployment = one(objects, "Deployment")
    # The chart names the images the way scripts/build-images.sh tags them.
    assert server_container(deployment)["image"] == server_image
    assert deployment["spec"]["template"]["spec"]["initContainers"][0]["image"] == model_image
    pod = Pod(backend, objects, tmp_path_factory.mktemp(backend))
    pod.prepare()
    try:
        yield pod
    finally:
        pod.remove()


def test_image_runs_the_rendered_pod(pod: Pod) -> None:
    init_log = pod.run_init()
    assert "installed" in init_log, init_log
    model_dir = pod.models / one(pod.objects, "ConfigMap", "-engine")["data"].get(
        "LLAMA_ARG_MODEL", one(pod.objects, "ConfigMap", "-engine")["data"].get("QWEN3_ORT_MODEL", "")
    ).removeprefix("/models/").split("/")[0]
    assert (model_dir / ".complete").is_file()

    pod.start()
    seen = pod.wait_ready()
    assert seen[-1] == 200

    engine = one(pod.objects, "ConfigMap", "-engine")["data"]
    name = engine.get("LLAMA_ARG_ALIAS") or engine["QWEN3_ORT_MODEL_NAME"]
    endpoint = client.Endpoint(pod.url, api_key=pod.api_key, model=name)
    assert [m["id"] for m in client.list_models(endpoint)] == [name]
    with pytest.raises(httpx.HTTPStatusError) as refused:
        client.list_models(client.Endpoint(pod.url))
    assert refused.value.response.status_code == 401, "the API key from the Secret is not enforced"

    answer = client.chat(endpoint, [{"role": "user", "content": "Say hello."}], max_tokens=8)
    assert answer["completion_tokens"] and answer["completion_tokens"] >= 1, answer

    # The gauges the preStop drain and the queue-depth autoscaling read exist under these names.
    metrics = httpx.get(pod.url + "/metrics", headers=endpoint.headers(), timeout=10).text
    busy = env_of(pod.server)["BUSY_METRICS"].split("|")
    for metric in busy:
        assert f"\n{metric} " in metrics or f"\n{metric}{{" in metrics, f"/metrics has no {metric}"

    test = pod.run_chart_test()
    assert test.returncode == 0, test.stdout + test.stderr
    assert "PASS" in test.stdout

    lifecycle = pod.server["lifecycle"]["preStop"]["exec"]["command"]
    started = time.monotonic()
    drain = pod.exec_server(lifecycle, env={"DRAIN_DELAY": "1"})
    assert drain.returncode == 0, drain.stdout + drain.stderr
    assert time.monotonic() - started < 10, "an idle server drained slowly"

    peak = pod.memory_peak()
    limit = memory_bytes(pod.server["resources"]["limits"]["memory"])
    print(f"\n{pod.backend}: memory peak {peak / 2**20:.0f} MiB of the {limit / 2**20:.0f} MiB limit", file=sys.stderr)
    assert 0 < peak < limit

    assert pod.stop() == 0, f"the server did not stop cleanly on SIGTERM:\n{pod.logs()}"

    again = pod.run_init()
    assert "nothing to do" in again, again


def busy(pod: Pod, headers: dict[str, str]) -> float:
    """Running plus waiting requests, from the gauges the preStop drain reads."""
    names = env_of(pod.server)["BUSY_METRICS"].split("|")
    total = 0.0
    for line in httpx.get(pod.url + "/metrics", headers=headers, timeout=5).text.splitlines():
        if line.split(" ")[0].split("{")[0] in names:
            total += float(line.split()[-1])
    return total


def test_drain_waits_for_running_requests(pod: Pod) -> None:
    """The preStop hook returns only once a running request has finished, and at the latest after
    REQUEST_TIMEOUT. The server gets a long context and one slot here, so that a request lasts
    seconds even with the tiny model."""
    if pod.backend == "llamacpp":
        overrides = {"LLAMA_ARG_CTX_SIZE": "16384", "LLAMA_ARG_N_PARALLEL": "1"}
    else:
        overrides = {"QWEN3_ORT_CONTEXT_LENGTH": "16384", "QWEN3_ORT_MAX_BATCH_SIZE": "1"}
    if not any(pod.models.glob("*/.complete")):
        pod.run_init()
    pod.start(overrides)
    pod.wait_ready()
    engine = one(pod.objects, "ConfigMap", "-engine")["data"]
    name = engine.get("LLAMA_ARG_ALIAS") or engine["QWEN3_ORT_MODEL_NAME"]
    endpoint = client.Endpoint(pod.url, api_key=pod.api_key, model=name)
    # A request that lasts ~8 s on this machine, from the speed of a short one.
    probe = client.chat(endpoint, [{"role": "user", "content": "Count."}], max_tokens=200)
    speed = (probe["completion_tokens"] or 1) / probe["latency"]
    max_tokens = int(min(15000, max(400, speed * 8)))

    result: dict[str, Any] = {}

    def long_request() -> None:
        body = {"model": name, "messages": [{"role": "user", "content": "Count."}], "max_tokens": max_tokens,
                "ignore_eos": True, "temperature": 0}
        started = time.monotonic()
        response = httpx.post(pod.url + "/v1/chat/completions", json=body, headers=endpoint.headers(), timeout=600)
        result.update(status=response.status_code, finished=time.monotonic(), took=time.monotonic() - started,
                      tokens=(response.json().get("usage") or {}).get("completion_tokens"))

    thread = threading.Thread(target=long_request)
    thread.start()
    deadline = time.monotonic() + 30
    while busy(pod, endpoint.headers()) < 1:
        assert thread.is_alive(), f"the request ended before it was seen running: {result}"
        assert time.monotonic() < deadline, "the request never showed in the busy gauges"
        time.sleep(0.05)
    prestop = pod.server["lifecycle"]["preStop"]["exec"]["command"]
    # Bounded: with a 1 s budget the hook gives up while the request still runs.
    started = time.monotonic()
    bounded = pod.exec_server(prestop, env={"DRAIN_DELAY": "0", "REQUEST_TIMEOUT": "1"})
    assert bounded.returncode == 0
    assert time.monotonic() - started < 6
    assert "stopping anyway" in bounded.stdout, bounded.stdout
    assert thread.is_alive(), f"the request finished too early to test the drain: {result}"
    # Unbounded (the default budget): the hook returns once the request is done.
    drain = pod.exec_server(prestop, env={"DRAIN_DELAY": "0", "REQUEST_TIMEOUT": "300"})
    drained = time.monotonic()
    thread.join()
    assert drain.returncode == 0, drain.stdout + drain.stderr
    assert result["status"] == 200, result
    assert "still running" in drain.stdout, f"the drain did not see the running request: {drain.stdout!r}"
    assert drained >= result["finished"] - 0.5, f"the drain returned before the request finished: {result}"
    print(f"\n{pod.backend}: drain waited for a {result['tokens']}-token request ({result['took']:.1f} s)",
          file=sys.stderr)


def test_init_downloads_once_and_checks_the_sha256(pod: Pod, tiny_checkpoint: str, tmp_path: Path) -> None:
    """model.init.method download: the file comes over HTTP, is refused when its sha256 differs from
    model.sha256, installed when it matches, and not fetched again."""
    if pod.backend != "llamacpp":
        pytest.skip("the download of a single GGUF file is the llama.cpp case; ONNX tarballs use the same code")
    gguf = next(Path(model_artifact("llamacpp", tiny_checkpoint)).glob("*.gguf"))
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    served = tmp_path / "served"
    served.mkdir()
    (served / "model.gguf").hardlink_to(gguf)

    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(served))  # noqa: E731
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/model.gguf"
        models = tmp_path / "models"
        models.mkdir()
        if os.geteuid() == 0:
            shutil.chown(models, 10001, 10001)
        else:
            run("podman", "unshare", "chown", "10001:10001", str(models))
        init = pod.spec["initContainers"][0]

        def init_run(sha256: str) -> subprocess.CompletedProcess[str]:
            env = {**env_of(init), "METHOD": "download", "DOWNLOAD_URL": url, "MODEL_SHA256": sha256,
                   "MODEL_DIR_NAME": "downloaded"}
            argv = ["podman", "run", "--rm", "--network", "host", *hardening(init["securityContext"]),
                    "-v", f"{models}:/models:rw", "-v", f"{pod.scripts}:/scripts:ro"]
            for key, value in env.items():
                argv += ["-e", f"{key}={value}"]
            # The engine image is what the download method runs (it has curl).
            argv += ["--entrypoint", "/bin/sh", server_container(pod.deployment)["image"], "/scripts/model-init.sh"]
            return run(*argv, check=False, timeout=120)

        wrong = init_run("0" * 64)
        assert wrong.returncode != 0
        assert f"expected {'0' * 64}" in wrong.stderr, wrong.stdout + wrong.stderr
        assert not (models / "downloaded").exists(), "a refused download must not be installed"
        good = init_run(digest)
        assert good.returncode == 0, good.stdout + good.stderr
        assert (models / "downloaded" / "model.gguf").stat().st_size == gguf.stat().st_size
        again = init_run(digest)
        assert "nothing to do" in again.stdout, again.stdout
