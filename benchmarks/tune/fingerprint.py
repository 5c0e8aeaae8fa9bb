"""The identities that key the measurement cache: this host, the engine builds, the model artifacts.

A measurement is reused only when the machine is the same kind (CPU model, cores, memory), the
engine is byte-for-byte the same build, and the model file is the same (its sha256 from the
artifact manifest).
"""

from __future__ import annotations

import hashlib
import platform
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from benchmarks.hwprobe import cpu_model
from qwen3ops.artifacts import sha256_file
from qwen3ops.paths import PROJECT_ROOT


def physical_cores() -> int:
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def host() -> dict[str, Any]:
    """What makes two machines comparable: CPU model, logical and physical cores, memory (GiB), OS."""
    return {
        "cpu_model": cpu_model(),
        "logical_cpus": psutil.cpu_count() or 1,
        "physical_cores": physical_cores(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30),
        "machine": platform.machine(),
        "system": platform.system(),
    }


def host_id(info: dict[str, Any] | None = None) -> str:
    text = repr(sorted((info or host()).items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@lru_cache(maxsize=8)
def _file_sha(path: str, mtime: float, size: int) -> str:
    return sha256_file(Path(path))


def llamacpp_engine(binary: Path) -> dict[str, Any]:
    """llama-server's identity: its build directory (version, flags, CPU) and the binary's sha256."""
    stat = binary.stat()
    return {"engine": "llama.cpp llama-server", "build": binary.parent.parent.name,
            "sha256": _file_sha(str(binary), stat.st_mtime, stat.st_size)}


def onnx_engine() -> dict[str, Any]:
    """The ONNX server's identity: onnxruntime(-genai) versions and the sha256 of the server's own code."""
    digest = hashlib.sha256()
    for path in sorted((PROJECT_ROOT / "qwen3ops" / "ortserver").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    versions = {}
    for package in ("onnxruntime", "onnxruntime-genai"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"engine": "qwen3ops.ortserver", **versions, "source_sha256": digest.hexdigest()[:16]}


def workload_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
