"""Real candidate servers on loopback: llama-server (our build, our GGUF) or the project's ONNX server.

`running(...)` starts the instances a `Settings` asks for on free ports from a base port (never the
deployment's: 8080-8099 stay untouched), waits until each one has loaded its model (llama-server
/health, the ONNX server /ready), and stops them on exit (SIGTERM, then SIGKILL after a grace
period). Each instance's output goes to a log file, named in the error when it fails to start.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.tune.models import Artifact
from benchmarks.tune.space import Settings, llamacpp_argv, onnx_argv
from qwen3ops.paths import PROJECT_ROOT


class StartError(RuntimeError):
    """A candidate server did not come up (the message names its log)."""


@dataclass(frozen=True)
class Instance:
    url: str
    pid: int
    log: Path


@dataclass(frozen=True)
class Running:
    instances: list[Instance]
    model: str  # the name the server lists
    start_s: float  # seconds from launch until every instance was ready

    @property
    def urls(self) -> list[str]:
        return [i.url for i in self.instances]

    @property
    def pids(self) -> list[int]:
        return [i.pid for i in self.instances]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(base: int, count: int) -> list[int]:
    ports: list[int] = []
    port = base
    while len(ports) < count:
        if port > base + 500:
            raise StartError(f"no {count} free ports from {base}: pass another --port-base")
        if port_is_free(port):
            ports.append(port)
        port += 1
    return ports


def _clean_env() -> dict[str, str]:
    """The environment without any LLAMA_ARG_*/QWEN3_ORT_* setting that would change the candidate."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLAMA_ARG_", "QWEN3_ORT_"))}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    return env


def _argv(settings: Settings, artifact: Artifact, binary: Path | None, port: int) -> list[str]:
    if settings.backend == "llamacpp":
        if binary is None:
            raise StartError("no llama-server binary given")
        return llamacpp_argv(settings, str(binary), str(artifact.path), port, artifact.name)
    return onnx_argv(settings, sys.executable, str(artifact.path), port)


def _stop(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _wait_ready(url: str, path: str, process: subprocess.Popen[bytes], deadline: float, log: Path) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-1500:] if log.is_file() else ""
            raise StartError(f"exited with status {process.returncode} before it was ready (log {log}):\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise StartError(f"not ready after the start timeout (log {log})")


@contextlib.contextmanager
def running(settings: Settings, artifact: Artifact, *, binary: Path | None, port_base: int, log_dir: Path,
            timeout: float = 300.0) -> Iterator[Running]:
    """Start the candidate's instances, yield them once all are ready, stop them afterwards."""
    log_dir.mkdir(parents=True, exist_ok=True)
    ports = free_ports(port_base, settings.instances)
    processes: list[subprocess.Popen[bytes]] = []
    instances: list[Instance] = []
    ready_path = "/health" if settings.backend == "llamacpp" else "/ready"
    started = time.monotonic()
    try:
        for port in ports:
            log = log_dir / f"{settings.backend}-{port}.log"
            with log.open("wb") as handle:
                process = subprocess.Popen(_argv(settings, artifact, binary, port), stdout=handle,
                                           stderr=subprocess.STDOUT, env=_clean_env(), cwd=PROJECT_ROOT)
            processes.append(process)
            instances.append(Instance(f"http://127.0.0.1:{port}", process.pid, log))
        deadline = started + timeout
        for instance, process in zip(instances, processes, strict=True):
            _wait_ready(instance.url, ready_path, process, deadline, instance.log)
        model = artifact.name
        with contextlib.suppress(httpx.HTTPError, KeyError, IndexError, ValueError):
            model = httpx.get(instances[0].url + "/v1/models", timeout=10).json()["data"][0]["id"]
        yield Running(instances, model, time.monotonic() - started)
    finally:
        for process in processes:
            _stop(process)
