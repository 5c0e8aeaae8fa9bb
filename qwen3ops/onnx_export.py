"""Export a Hugging Face checkpoint to ONNX with the onnxruntime-genai model builder (int4, int8, fp32).

Each precision is an artifact in the store, published atomically with a manifest:

    <store>/onnx/<profile>/<checkpoint dir name>/<precision>/
        model.onnx, model.onnx.data, genai_config.json, tokenizer files, README.md, manifest.json

int4 and int8 are weight-only quantized (MatMulNBits, block size 32, symmetric, CPU accuracy level
4); fp32 is the unquantized reference. Every export is built for the CPU execution provider with the
LM head pruned to the last position during prefill (`prune_lm_head`), so a long prompt never
materialises [prompt length x vocabulary] logits. The tokenizer files are the checkpoint's own (the
project's tokenizer), not the builder's re-saved copy.

Numeric fidelity is measured at export time and written into the manifest (`fidelity`): the exported
model and the PyTorch reference (transformers, float32) read the same fixed prompts token by token;
at every position we compare the next-token distributions: top-1 agreement (share of positions where
both pick the same most likely token) and the KL divergence KL(reference || onnx) in nats (mean and
max). This is meaningful with synthetic weights too: it measures what quantization does to the
computation, not what the model knows.

A run whose inputs (checkpoint manifest, builder version, options) are unchanged reuses the published
artifact and reports changed=false. Synthetic checkpoints stay labelled: the manifest's `synthetic`
and the served model name (`<profile>-<precision>-synthetic`).

    python -m qwen3ops.onnx_export --checkpoint DIR --precision int4 --json
    python -m qwen3ops.onnx_export --checkpoint DIR --precision int4 --precision int8 --precision fp32

With --json the last line of stdout is one JSON object: changed, changed_precisions, and per
precision the artifact directory (paths), its size and its fidelity. Progress and the builder's
output go to stderr. Exports take memory (the 0.6B model: ~70 s, ~5.6 GB RSS); run them with
`nice` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from qwen3ops import artifacts
from qwen3ops.errors import UserError
from qwen3ops.paths import default_store

PRECISIONS = ("int4", "int8", "fp32")
# Bump when the export recipe changes in a way the inputs below do not capture.
EXPORT_VERSION = 1
# The builder's options, by precision (see onnxruntime_genai/models/builder.py --extra_options).
BUILDER_OPTIONS: dict[str, dict[str, str]] = {
    "int4": {"prune_lm_head": "true", "block_size": "32", "accuracy_level": "4", "is_symmetric": "true"},
    "int8": {"prune_lm_head": "true", "block_size": "32", "accuracy_level": "4", "is_symmetric": "true"},
    "fp32": {"prune_lm_head": "true"},
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")
# Fixed fidelity prompts: prose, code, Chinese, and the chat format, so that common, rare and special
# tokens all occur. Each is cut to FIDELITY_TOKENS tokens.
FIDELITY_PROMPTS = (
    "The quick brown fox jumps over the lazy dog while the farmer counts his sheep at dawn.",
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
    "机器学习是人工智能的一个分支，它使计算机能够从数据中学习，而无需明确编程。",
    "<|im_start|>user\nSummarise the call: the customer says the invoice is wrong twice.<|im_end|>\n"
    "<|im_start|>assistant\n",
)
FIDELITY_TOKENS = 24


class ToolError(RuntimeError):
    """The builder or a check failed on valid input (the message says which)."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    profile: str
    synthetic: bool
    manifest_sha256: str

    def model_name(self, precision: str) -> str:
        """The served model name: profile and precision, marked when the weights are random."""
        return f"{self.profile}-{precision}" + ("-synthetic" if self.synthetic else "")


def read_checkpoint(path: Path) -> Checkpoint:
    path = path.expanduser().resolve()
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a Hugging Face checkpoint directory (no config.json); "
                        "make one with `python -m qwen3ops.provision model --json`")
    manifest = artifacts.read_manifest(path)
    if manifest is None or "profile" not in manifest:
        raise UserError(f"{path} has no artifact manifest with a profile ({artifacts.MANIFEST}); "
                        "export checkpoints published by `python -m qwen3ops.provision model`")
    problems = artifacts.verify(path, deep=False)
    if problems:
        raise UserError(f"checkpoint {path} is damaged: {'; '.join(problems)}; provision it again")
    return Checkpoint(path=path, profile=str(manifest["profile"]), synthetic=bool(manifest.get("synthetic")),
                      manifest_sha256=artifacts.sha256_file(path / artifacts.MANIFEST))


def artifact_dir(store: Path, checkpoint: Checkpoint, precision: str) -> Path:
    return store / "onnx" / checkpoint.profile / checkpoint.path.name / precision


def builder_version() -> str:
    return metadata.version("onnxruntime-genai")


def _is_current(dest: Path, expected: dict[str, Any]) -> bool:
    manifest = artifacts.read_manifest(dest)
    if manifest is None or any(manifest.get(key) != value for key, value in expected.items()):
        return False
    return not artifacts.verify(dest, deep=False)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_builder(checkpoint: Checkpoint, precision: str, out: Path, cache: Path) -> None:
    """checkpoint -> ONNX model package in out, with the onnxruntime-genai model builder (a subprocess:
    its memory is returned to the system when it ends)."""
    options = [f"{k}={v}" for k, v in BUILDER_OPTIONS[precision].items()]
    argv = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(checkpoint.path), "-o", str(out),
            "-p", precision, "-e", "cpu", "-c", str(cache), "--extra_options", *options]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    _log(f"export {precision}: {' '.join(argv)}")
    started = time.monotonic()
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        tail = result.stdout.decode("utf-8", "replace")[-3000:]
        raise ToolError(f"the onnxruntime-genai model builder failed (exit {result.returncode}):\n{tail}")
    if not (out / "model.onnx").is_file() or not (out / "genai_config.json").is_file():
        raise ToolError(f"the model builder reported success but {out} has no model.onnx/genai_config.json")
    _log(f"export {precision}: built in {time.monotonic() - started:.0f} s")


def _use_checkpoint_tokenizer(checkpoint: Checkpoint, out: Path) -> None:
    """Replace the builder's re-saved tokenizer files with the checkpoint's (one tokenizer, one source);
    the chat template then lives in tokenizer_config.json only."""
    for name in TOKENIZER_FILES:
        source = checkpoint.path / name
        if source.is_file():
            shutil.copy2(source, out / name)
    config = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    if not config.get("chat_template"):
        raise ToolError(f"{checkpoint.path}/tokenizer_config.json has no chat_template")
    (out / "chat_template.jinja").unlink(missing_ok=True)


def _model_card(checkpoint: Checkpoint, precision: str, fidelity: dict[str, Any]) -> str:
    weights = ("SYNTHETIC (random) weights: for testing and throughput measurement only; do not use it for "
               "anything that depends on what the model says." if checkpoint.synthetic else "real weights")
    return (f"# {checkpoint.model_name(precision)}\n\n"
            f"ONNX export of `{checkpoint.profile}` ({weights})\n\n"
            f"- Made by `python -m qwen3ops.onnx_export --checkpoint {checkpoint.path} --precision {precision}` "
            f"with the onnxruntime-genai {builder_version()} model builder for the CPU execution provider "
            f"(options: {', '.join(f'{k}={v}' for k, v in BUILDER_OPTIONS[precision].items())}).\n"
            f"- Fidelity against the PyTorch float32 reference over {fidelity['positions']} positions: "
            f"top-1 agreement {fidelity['top1_agreement']:.4f}, mean KL {fidelity['mean_kl']:.3g} nats.\n"
            "- Serve it with `python -m qwen3ops.ortserver --model <this directory>`.\n")


# --- fidelity ----------------------------------------------------------------------------------


def fidelity_token_ids(checkpoint_path: Path) -> list[list[int]]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(checkpoint_path / "tokenizer.json"))
    return [tokenizer.encode(text, add_special_tokens=False).ids[:FIDELITY_TOKENS] for text in FIDELITY_PROMPTS]


def load_reference(checkpoint_path: Path) -> Any:
    """The checkpoint as a float32 PyTorch model (transformers), in evaluation mode."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(checkpoint_path), dtype=torch.float32)
    model.eval()
    return model


def model_logits(model: Any, prompts: list[list[int]]) -> list[np.ndarray]:
    """Next-token logits of a PyTorch model at every position of every prompt."""
    import torch

    with torch.inference_mode():
        return [model(torch.tensor([ids], dtype=torch.long)).logits[0].float().numpy().copy() for ids in prompts]


def reference_logits(checkpoint_path: Path, prompts: list[list[int]]) -> list[np.ndarray]:
    """Next-token logits of the PyTorch model (float32) at every position of every prompt."""
    return model_logits(load_reference(checkpoint_path), prompts)


def onnx_logits(model_dir: Path, prompts: list[list[int]], threads: int = 0) -> list[np.ndarray]:
    """Next-token logits of the exported model at every position, read token by token (the pruned LM head
    yields the last position only), with plain onnxruntime and a growing key-value cache."""
    import onnxruntime as ort

    decoder = json.loads((model_dir / "genai_config.json").read_text(encoding="utf-8"))["model"]["decoder"]
    layers, kv_heads, head = decoder["num_hidden_layers"], decoder["num_key_value_heads"], decoder["head_size"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_dir / decoder["filename"]), options, providers=["CPUExecutionProvider"])
    kv_type = {"tensor(float)": np.float32, "tensor(float16)": np.float16}[
        next(i.type for i in session.get_inputs() if i.name.startswith("past_key_values"))]
    names = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")]
    out = []
    for ids in prompts:
        past = {name: np.zeros((1, kv_heads, 0, head), kv_type) for name in names}
        rows = []
        for position, token in enumerate(ids):
            feeds = {"input_ids": np.array([[token]], np.int64),
                     "attention_mask": np.ones((1, position + 1), np.int64), **past}
            result = session.run(None, feeds)
            outputs = dict(zip([o.name for o in session.get_outputs()], result, strict=True))
            rows.append(outputs["logits"][0, -1].astype(np.float32))
            past = {name: outputs[name.replace("past_key_values", "present")] for name in names}
        out.append(np.stack(rows))
    return out


def compare_logits(reference: list[np.ndarray], candidate: list[np.ndarray]) -> dict[str, Any]:
    """Top-1 agreement and KL(reference || candidate) per position, over every prompt."""
    agree, kls = [], []
    for ref, cand in zip(reference, candidate, strict=True):
        ref64, cand64 = ref.astype(np.float64), cand[:, : ref.shape[1]].astype(np.float64)
        agree.extend((ref64.argmax(axis=1) == cand64.argmax(axis=1)).tolist())
        log_p = ref64 - ref64.max(axis=1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
        log_q = cand64 - cand64.max(axis=1, keepdims=True)
        log_q -= np.log(np.exp(log_q).sum(axis=1, keepdims=True))
        kls.extend((np.exp(log_p) * (log_p - log_q)).sum(axis=1).tolist())
    return {"top1_agreement": round(float(np.mean(agree)), 6), "mean_kl": float(f"{np.mean(kls):.6g}"),
            "max_kl": float(f"{np.max(kls):.6g}"), "positions": len(agree), "prompts": len(reference),
            "reference": "transformers float32 (PyTorch)", "tokens_per_prompt": FIDELITY_TOKENS}


# --- the export --------------------------------------------------------------------------------


def export(checkpoint: Checkpoint, precision: str, dest: Path, expected: dict[str, Any],
           reference: list[np.ndarray], prompts: list[list[int]]) -> None:
    source = artifacts.read_manifest(checkpoint.path) or {}
    description = {"kind": "onnx", **expected, "profile": checkpoint.profile, "synthetic": checkpoint.synthetic,
                   "parameters": source.get("parameters"),
                   "name": checkpoint.model_name(precision), "execution_provider": "cpu",
                   "builder_options": BUILDER_OPTIONS[precision], "model_file": "model.onnx"}
    with tempfile.TemporaryDirectory(prefix="qwen3ops-onnx-cache-") as cache, \
            artifacts.publish(dest, description) as tmp:
        run_builder(checkpoint, precision, tmp, Path(cache))
        _use_checkpoint_tokenizer(checkpoint, tmp)
        _log(f"fidelity {precision}: {len(prompts)} prompts x {FIDELITY_TOKENS} tokens against PyTorch")
        fidelity = compare_logits(reference, onnx_logits(tmp, prompts))
        _log(f"fidelity {precision}: top-1 agreement {fidelity['top1_agreement']:.4f}, "
             f"mean KL {fidelity['mean_kl']:.3g}, max KL {fidelity['max_kl']:.3g}")
        (tmp / "README.md").write_text(_model_card(checkpoint, precision, fidelity), encoding="utf-8")
        description["fidelity"] = fidelity


def ensure_onnx(checkpoint_path: Path, precisions: list[str], store: Path | None = None,
                force: bool = False) -> dict[str, Any]:
    """Make (or reuse) the ONNX exports of a checkpoint; the result is what --json prints."""
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown or not precisions:
        raise UserError(f"unknown precision {unknown or precisions}; choose from {', '.join(PRECISIONS)}")
    checkpoint = read_checkpoint(checkpoint_path)
    store = (store or default_store()).expanduser().resolve()
    wanted = [p for p in PRECISIONS if p in precisions]
    artifacts.clean_partials(artifact_dir(store, checkpoint, wanted[0]).parent)
    made: list[str] = []
    reference: list[np.ndarray] | None = None
    prompts = fidelity_token_ids(checkpoint.path)
    for precision in wanted:
        dest = artifact_dir(store, checkpoint, precision)
        expected = {"precision": precision, "export_version": EXPORT_VERSION,
                    "onnxruntime_genai": builder_version(),
                    "checkpoint": {"path": str(checkpoint.path), "manifest_sha256": checkpoint.manifest_sha256}}
        if force or not _is_current(dest, expected):
            if reference is None:
                _log(f"fidelity: PyTorch reference logits of {checkpoint.path.name}")
                reference = reference_logits(checkpoint.path, prompts)
            export(checkpoint, precision, dest, expected, reference, prompts)
            made.append(precision)
    manifests = {p: artifacts.read_manifest(artifact_dir(store, checkpoint, p)) or {} for p in wanted}
    return {
        "changed": bool(made),
        "changed_precisions": made,
        "profile": checkpoint.profile,
        "synthetic": checkpoint.synthetic,
        "checkpoint": str(checkpoint.path),
        "onnxruntime_genai": builder_version(),
        "names": {p: manifests[p]["name"] for p in wanted},
        "paths": {p: str(artifact_dir(store, checkpoint, p)) for p in wanted},
        "sizes": {p: sum(f["size"] for f in manifests[p]["files"].values()) for p in wanted},
        "fidelity": {p: manifests[p]["fidelity"] for p in wanted},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qwen3ops.onnx_export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="checkpoint directory published by `python -m qwen3ops.provision model`")
    parser.add_argument("--precision", action="append", choices=PRECISIONS, required=True,
                        help="output precision; repeat for several")
    parser.add_argument("--store", type=Path, default=None, help=f"artifact store (default: {default_store()})")
    parser.add_argument("--force", action="store_true", help="remake the exports even when they are current")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line (last line)")
    args = parser.parse_args(argv)
    try:
        result = ensure_onnx(args.checkpoint, args.precision, args.store, args.force)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        for precision, path in result["paths"].items():
            state = "made" if precision in result["changed_precisions"] else "up to date"
            fid = result["fidelity"][precision]
            print(f"{precision:5} {state:10} top-1 {fid['top1_agreement']:.4f}  mean KL {fid['mean_kl']:.3g}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
