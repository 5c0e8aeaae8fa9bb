"""Numeric fidelity of GGUF quantizations: top-1 agreement and KL against the full-precision model.

For each GGUF artifact (f16, Q8_0, Q4_K_M) the weights are read back with the pinned gguf package
and dequantized to float32, loaded into the PyTorch Qwen3 model (transformers, float32), and run
over the same fixed prompts as the ONNX exports' fidelity check (qwen3ops.onnx_export: prose, code,
Chinese, the chat format; 24 tokens each). At every position the next-token distribution is
compared with the original checkpoint's (float32): top-1 agreement and KL(reference || quantized)
in nats, mean and max.

What it measures: the error of the quantized *weights*, which is what a quantization type costs.
What it leaves out: llama.cpp's own arithmetic (its matrix products round activations to 8 bits
for the quantized types); that adds a little on top. Synthetic (random) weights give near-uniform
next-token distributions, so top-1 agreement is fragile there; KL is the steadier figure.

Each result is an artifact in the store, published atomically, reused while the GGUF file (its
sha256) and this method are unchanged:

    <store>/fidelity/gguf/<profile>/<checkpoint dir name>/<quant>/{fidelity.json,manifest.json}

    python -m qwen3ops.gguf_fidelity --checkpoint DIR --quant q8_0 --quant q4_k_m [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from qwen3ops import artifacts, gguf, onnx_export
from qwen3ops.errors import UserError
from qwen3ops.paths import default_store

# Bump when the method changes: results made by another version are recomputed.
METHOD_VERSION = 1

_LAYER = re.compile(r"^blk\.(\d+)\.(.+)$")
_PER_LAYER = {
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
           "output.weight": "lm_head.weight"}


def hf_name(gguf_name: str) -> str:
    """The transformers parameter name of a GGUF tensor of a Qwen3 model."""
    if gguf_name in _GLOBAL:
        return _GLOBAL[gguf_name]
    match = _LAYER.match(gguf_name)
    if not match or match.group(2) not in _PER_LAYER:
        raise ValueError(f"unexpected tensor {gguf_name} in a Qwen3 GGUF")
    return f"model.layers.{match.group(1)}.{_PER_LAYER[match.group(2)]}"


def load_gguf_weights(model: Any, gguf_path: Path) -> None:
    """Replace the model's weights with the GGUF's, dequantized to float32 one tensor at a time (the
    architecture stays the checkpoint's; peak memory is the model plus one tensor)."""
    import torch
    from gguf import GGUFReader
    from gguf.quants import dequantize

    params = dict(model.named_parameters())  # a tied output head is the embedding's tensor, listed once
    loaded = set()
    with torch.no_grad():
        for tensor in GGUFReader(gguf_path).tensors:
            name = hf_name(tensor.name)
            if name not in params:
                raise ValueError(f"{gguf_path}: tensor {tensor.name} ({name}) is not in the checkpoint's model")
            values = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
            params[name].copy_(torch.from_numpy(values.reshape(tuple(params[name].shape))))
            loaded.add(name)
    missing = sorted(set(params) - loaded)
    if missing:
        raise ValueError(f"{gguf_path} lacks tensors of the model: {missing[:5]}")


def artifact_dir(store: Path, checkpoint: gguf.Checkpoint, quant: str) -> Path:
    return store / "fidelity" / "gguf" / checkpoint.profile / checkpoint.path.name / quant


def ensure_fidelity(checkpoint_path: Path, quants: list[str], store: Path | None = None,
                    llamacpp_bin: Path | None = None) -> dict[str, dict[str, Any]]:
    """The fidelity of each GGUF quantization of a checkpoint (made, or reused from the store)."""
    store = (store or default_store()).expanduser().resolve()
    made = gguf.ensure_gguf(checkpoint_path, quants, store, llamacpp_bin)
    checkpoint = gguf.read_checkpoint(checkpoint_path)
    prompts = onnx_export.fidelity_token_ids(checkpoint.path)
    model: Any = None
    reference: list[np.ndarray] = []
    results: dict[str, dict[str, Any]] = {}
    for quant in [q for q in gguf.QUANTS if q in quants]:
        gguf_dir = Path(made["paths"][quant])
        manifest = artifacts.read_manifest(gguf_dir) or {}
        gguf_file = gguf_dir / manifest["gguf_file"]
        expected = {"kind": "gguf-fidelity", "method_version": METHOD_VERSION, "quant": quant,
                    "gguf": {"path": str(gguf_file), "sha256": manifest["files"][manifest["gguf_file"]]["sha256"]},
                    "checkpoint": {"path": str(checkpoint.path), "manifest_sha256": checkpoint.manifest_sha256}}
        dest = artifact_dir(store, checkpoint, quant)
        current = artifacts.read_manifest(dest)
        if current is None or any(current.get(k) != v for k, v in expected.items()) or artifacts.verify(dest):
            if model is None:
                print(f"fidelity: PyTorch float32 reference logits of {checkpoint.path.name}", file=sys.stderr)
                model = onnx_export.load_reference(checkpoint.path)
                reference = onnx_export.model_logits(model, prompts)
            print(f"fidelity {quant}: dequantizing {gguf_file.name} into PyTorch", file=sys.stderr)
            load_gguf_weights(model, gguf_file)
            fidelity = onnx_export.compare_logits(reference, onnx_export.model_logits(model, prompts))
            fidelity["reference"] = "transformers float32 (PyTorch), original checkpoint"
            fidelity["method"] = "GGUF weights dequantized with gguf-py into the PyTorch model (weight error only)"
            description = {**expected, "profile": checkpoint.profile, "synthetic": checkpoint.synthetic,
                           "fidelity": fidelity}
            with artifacts.publish(dest, description) as tmp:
                artifacts.write_json(tmp / "fidelity.json", fidelity)
            print(f"fidelity {quant}: top-1 agreement {fidelity['top1_agreement']:.4f}, "
                  f"mean KL {fidelity['mean_kl']:.3g}", file=sys.stderr)
        results[quant] = (artifacts.read_manifest(dest) or {})["fidelity"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qwen3ops.gguf_fidelity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="checkpoint directory published by `python -m qwen3ops.provision model`")
    parser.add_argument("--quant", action="append", choices=list(gguf.QUANTS), required=True,
                        help="GGUF quantization to check; repeat for several")
    parser.add_argument("--store", type=Path, default=None, help=f"artifact store (default: {default_store()})")
    parser.add_argument("--llamacpp-bin", type=Path, default=None,
                        help="directory with llama-quantize (default: scripts/build-llamacpp.sh's)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args(argv)
    try:
        results = ensure_fidelity(args.checkpoint, args.quant, args.store, args.llamacpp_bin)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results))
    else:
        for quant, fid in results.items():
            print(f"{quant:7} top-1 {fid['top1_agreement']:.4f}  mean KL {fid['mean_kl']:.3g}  "
                  f"max KL {fid['max_kl']:.3g}  ({fid['positions']} positions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
