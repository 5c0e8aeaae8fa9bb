"""Fixtures of the ONNX server tests: the qwen3-tiny checkpoint exported to ONNX (int4) once per session,
and a real server process on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="session")
def tiny_checkpoint(store: Path) -> Path:
    from qwen3ops import provision

    return Path(provision.provision("qwen3-tiny", "synthetic", store, progress=False)["path"])


@pytest.fixture(scope="session")
def tiny_export(store: Path, tiny_checkpoint: Path) -> dict:
    """The int4 export of qwen3-tiny (the builder plus the fidelity check: ~15-30 s once)."""
    from qwen3ops import onnx_export

    return onnx_export.ensure_onnx(tiny_checkpoint, ["int4"], store)


@pytest.fixture(scope="session")
def tiny_onnx(tiny_export: dict) -> Path:
    return Path(tiny_export["paths"]["int4"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python -m qwen3ops.ortserver` as a user runs it, on 127.0.0.1 and a free port."""

    def __init__(self, model: Path, *options: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"ortserver-test-{self.port}.log"
        argv = [sys.executable, "-m", "qwen3ops.ortserver", "--model", str(model), "--host", "127.0.0.1",
                "--port", str(self.port), "--threads", "1", *options]
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(argv, cwd=ROOT, stdout=self._log_file, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")[-5000:]

    def terminate(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()
        return self.process.returncode

    def metric(self, name: str, labels: str = "") -> float:
        """The value of one sample of /metrics (0 when absent)."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        key = name + (("{" + labels + "}") if labels else "")
        for line in text.splitlines():
            if line.startswith(key + " "):
                return float(line.split()[-1])
        return 0.0


@pytest.fixture(scope="module")
def server(tiny_onnx: Path) -> Iterator[ServerProcess]:
    """A shared server: 4 slots, 512 tokens of context, a queue of 8."""
    proc = ServerProcess(tiny_onnx, "--context-length", "512", "--max-batch-size", "4", "--max-queue", "8",
                         "--default-max-tokens", "16")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.terminate()
