"""GGUF fidelity on the tiny checkpoint: f16 is (nearly) exact, Q8_0 is close, the result is kept in the store."""

import json
from pathlib import Path

import pytest

from qwen3ops import artifacts, gguf_fidelity, provision
from tests.conftest import run_cli


def test_every_tensor_name_maps_to_the_transformers_model() -> None:
    assert gguf_fidelity.hf_name("blk.27.ffn_down.weight") == "model.layers.27.mlp.down_proj.weight"
    assert gguf_fidelity.hf_name("token_embd.weight") == "model.embed_tokens.weight"
    with pytest.raises(ValueError, match="unexpected tensor"):
        gguf_fidelity.hf_name("blk.0.ffn_gate_exps.weight")

def test_f16_is_exact_q8_0_is_close_and_the_result_is_reused(store: Path) -> None:
    checkpoint = provision.provision("qwen3-tiny", "synthetic", store, progress=False)["path"]
    args = ("qwen3ops.gguf_fidelity", "--checkpoint", checkpoint, "--quant", "f16", "--quant", "q8_0",
            "--store", str(store), "--json")
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr[-3000:]

    result = json.loads(first.stdout.strip().splitlines()[-1])
    f16, q8 = result["f16"], result["q8_0"]
    assert f16["top1_agreement"] == 1.0 and f16["mean_kl"] < 1e-9  # bf16 weights are exact in f16
    assert q8["top1_agreement"] >= 0.8 and 1e-9 < q8["mean_kl"] < 1e-3
    assert f16["positions"] == q8["positions"] > 50
    kept = store / "fidelity" / "gguf" / "qwen3-tiny" / Path(checkpoint).name / "q8_0"
    assert artifacts.verify(kept) == [] and artifacts.read_manifest(kept)["fidelity"] == q8
    again = run_cli(*args)
    assert again.returncode == 0 and "dequantizing" not in again.stderr  # read from the store
    assert json.loads(again.stdout.strip().splitlines()[-1]) == result
