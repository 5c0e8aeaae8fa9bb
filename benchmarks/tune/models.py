"""The model artifacts a search serves, made (or reused) in the artifact store, with their fidelity.

llama.cpp candidates serve GGUF files (python -m qwen3ops.gguf: f16, Q8_0, Q4_K_M); ONNX Runtime
candidates serve ONNX exports (python -m qwen3ops.onnx_export: int4, int8, fp32). Each artifact
is identified by the sha256 its manifest records, which keys the measurement cache. Fidelity:
ONNX exports carry it in their manifest; for GGUF files it is computed once by
qwen3ops.gguf_fidelity and kept in the store.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwen3ops import artifacts, gguf, gguf_fidelity, onnx_export, profiles, provision
from qwen3ops.paths import default_store


@dataclass(frozen=True)
class Artifact:
    backend: str
    quant: str
    path: Path  # the GGUF file, or the ONNX export directory
    sha256: str  # of the GGUF file, or of the ONNX weights file
    weight_bytes: int  # bytes of weights (read once per generated token)
    name: str  # the model name the server lists
    synthetic: bool


class Models:
    """The artifacts of one profile and source, made on first use."""

    def __init__(self, profile: str, source: str = "synthetic", store: Path | None = None,
                 llamacpp_bin: Path | None = None, seed: int = 0) -> None:
        self.profile = profiles.get(profile)
        self.source = source
        self.store = (store or default_store()).expanduser().resolve()
        self.llamacpp_bin = llamacpp_bin
        self.seed = seed
        self._checkpoint: dict[str, Any] | None = None
        self._artifacts: dict[tuple[str, str], Artifact] = {}

    @property
    def checkpoint(self) -> Path:
        if self._checkpoint is None:
            self._checkpoint = provision.provision(self.profile.name, self.source, self.store, self.seed,
                                                   progress=False)
        return Path(self._checkpoint["path"])

    @property
    def synthetic(self) -> bool:
        _ = self.checkpoint
        return bool(self._checkpoint and self._checkpoint["synthetic"])

    def artifact(self, backend: str, quant: str) -> Artifact:
        if (backend, quant) not in self._artifacts:
            make = self._gguf if backend == "llamacpp" else self._onnx
            self._artifacts[(backend, quant)] = make(quant)
        return self._artifacts[(backend, quant)]

    def _gguf(self, quant: str) -> Artifact:
        result = gguf.ensure_gguf(self.checkpoint, [quant], self.store, self.llamacpp_bin)
        directory = Path(result["paths"][quant])
        manifest = artifacts.read_manifest(directory) or {}
        entry = manifest["files"][manifest["gguf_file"]]
        name = f"{self.profile.name}-{quant}" + ("-synthetic" if result["synthetic"] else "")
        return Artifact("llamacpp", quant, directory / manifest["gguf_file"], entry["sha256"], entry["size"], name,
                        bool(result["synthetic"]))

    def _onnx(self, quant: str) -> Artifact:
        print(f"ONNX export {quant} of {self.profile.name} (made once, then reused)", file=sys.stderr)
        result = onnx_export.ensure_onnx(self.checkpoint, [quant], self.store)
        directory = Path(result["paths"][quant])
        manifest = artifacts.read_manifest(directory) or {}
        files = manifest["files"]
        weights = files.get("model.onnx.data") or files["model.onnx"]
        size = sum(f["size"] for name, f in files.items() if name.startswith("model.onnx"))
        return Artifact("onnxruntime", quant, directory, weights["sha256"], size, result["names"][quant],
                        bool(result["synthetic"]))

    def fidelity(self, wanted: list[tuple[str, str]]) -> dict[str, dict[str, Any] | None]:
        """Top-1 agreement and KL against the full-precision model of each (backend, quant), keyed
        "backend/quant" (None when the artifact carries none)."""
        out: dict[str, dict[str, Any] | None] = {}
        ggufs = sorted({q for b, q in wanted if b == "llamacpp"})
        if ggufs:
            found = gguf_fidelity.ensure_fidelity(self.checkpoint, ggufs, self.store, self.llamacpp_bin)
            out.update({f"llamacpp/{q}": found[q] for q in ggufs})
        for backend, quant in sorted({w for w in wanted if w[0] != "llamacpp"}):
            manifest = artifacts.read_manifest(self.artifact(backend, quant).path) or {}
            out[f"{backend}/{quant}"] = manifest.get("fidelity")
        return out
