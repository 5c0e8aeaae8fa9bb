"""Helpers to play rendered pods with podman (tests/k8s/test_images.py, test_sizing.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from typing import Any

from tests.k8s.chart import ROOT


def run(*argv: str, check: bool = True, timeout: float | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT, timeout=timeout,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                             f"{result.stderr[-3000:]}")
    return result


def last_json_line(stdout: str) -> dict[str, Any]:
    return json.loads(stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(quantity)


def hardening(ctx: dict[str, Any]) -> list[str]:
    """podman options for a container securityContext as the chart renders it."""
    assert ctx["readOnlyRootFilesystem"] and ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    return ["--user", f"{ctx['runAsUser']}:{ctx['runAsGroup']}", "--read-only", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--tmpfs", "/tmp:rw,size=64m"]
