"""Synthetic Qwen3 weights: the exact architecture of a profile, seeded random values.

Performance measured on them is real (the same tensors are read and multiplied); quality is not.
Every tensor is drawn from its own generator, seeded by (seed, tensor name), so a checkpoint is
reproducible bit for bit and independent of the order tensors are made in. Initialisation follows
Qwen3's `_init_weights`: normal(0, initializer_range) for linear and embedding weights, ones for
RMSNorm weights.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from tqdm import tqdm

from qwen3ops.profiles import Profile

NOTE = (
    "SYNTHETIC WEIGHTS: exact Qwen3 architecture and configuration, real Qwen tokenizer, seeded random "
    "weights. Speed and memory figures are real; answers and quality figures are meaningless."
)


def write_safetensors(profile: Profile, seed: int, path: Path, *, progress: bool = True) -> int:
    """Write model.safetensors (bf16) for the profile; returns the number of parameters."""
    import torch
    from safetensors.torch import save_file

    std = float(profile.config["initializer_range"])
    tensors = {}
    shapes = profile.tensor_shapes()
    for name, shape in tqdm(shapes.items(), desc=f"synthetic {profile.name}", unit="tensor",
                            disable=not progress, leave=False):
        if len(shape) == 1:
            tensors[name] = torch.ones(shape, dtype=torch.bfloat16)
            continue
        generator = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % 2**63)
        tensors[name] = torch.empty(shape, dtype=torch.float32).normal_(0.0, std, generator=generator).to(
            torch.bfloat16)
    save_file(tensors, str(path), metadata={"format": "pt", "qwen3_ops_synthetic": "true", "seed": str(seed)})
    _canonicalise_header(path)
    return sum(t.numel() for t in tensors.values())


def _canonicalise_header(path: Path) -> None:
    """Rewrite the safetensors JSON header with sorted keys, so the same seed gives the same bytes.

    The writer serialises metadata from a hash map whose order changes from process to process.
    """
    with path.open("r+b") as handle:
        size = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(size))
        canonical = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        if len(canonical) > size:
            raise RuntimeError(f"canonical safetensors header of {path} is longer than the original")
        handle.seek(8)
        handle.write(canonical.ljust(size, b" "))
