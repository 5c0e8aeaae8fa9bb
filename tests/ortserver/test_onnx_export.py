"""The ONNX export: an artifact with the builder's model, the project's tokenizer, the synthetic label and a
fidelity measurement in its manifest; cached on the second run; bad input refused with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

from qwen3ops import artifacts, onnx_export
from tests.conftest import run_cli


def test_export_is_an_artifact_with_fidelity_and_the_synthetic_label(tiny_export: dict, tiny_checkpoint: Path,
                                                                     store: Path) -> None:
    path = Path(tiny_export["paths"]["int4"])
    assert path == store / "onnx" / "qwen3-tiny" / tiny_checkpoint.name / "int4"
    manifest = artifacts.read_manifest(path)
    assert manifest is not None and not artifacts.verify(path)
    assert manifest["kind"] == "onnx" and manifest["precision"] == "int4" and manifest["synthetic"] is True
    assert manifest["name"] == tiny_export["names"]["int4"] == "qwen3-tiny-int4-synthetic"
    assert {"model.onnx", "model.onnx.data", "genai_config.json", "tokenizer.json", "tokenizer_config.json",
            "README.md"} <= set(manifest["files"])
    # The project's tokenizer, byte for byte, and the chat template in one place.
    assert (path / "tokenizer.json").read_bytes() == (tiny_checkpoint / "tokenizer.json").read_bytes()
    assert not (path / "chat_template.jinja").exists()
    fidelity = manifest["fidelity"]
    assert fidelity["positions"] >= 60 and 0.0 <= fidelity["mean_kl"] < 0.05
    assert 0.5 <= fidelity["top1_agreement"] <= 1.0
    assert "SYNTHETIC" in (path / "README.md").read_text()
    config = json.loads((path / "genai_config.json").read_text())
    assert config["model"]["type"] == "qwen3"


def test_second_run_changes_nothing(tiny_export: dict, tiny_checkpoint: Path, store: Path) -> None:
    path = Path(tiny_export["paths"]["int4"])
    before = (path / "manifest.json").read_text()
    again = onnx_export.ensure_onnx(tiny_checkpoint, ["int4"], store)
    assert again["changed"] is False and again["changed_precisions"] == []
    assert (path / "manifest.json").read_text() == before


def test_fidelity_comparison_is_exact_for_identical_logits() -> None:
    import numpy as np

    rows = [np.random.default_rng(0).normal(size=(5, 50)).astype(np.float32)]
    same = onnx_export.compare_logits(rows, rows)
    assert same["top1_agreement"] == 1.0 and abs(same["mean_kl"]) < 1e-9
    flipped = onnx_export.compare_logits(rows, [-rows[0]])
    assert flipped["top1_agreement"] == 0.0 and flipped["mean_kl"] > 1.0


def test_cli_refuses_bad_input(tmp_path: Path) -> None:
    result = run_cli("qwen3ops.onnx_export", "--checkpoint", str(tmp_path), "--precision", "int4")
    assert result.returncode == 2 and "not a Hugging Face checkpoint" in result.stderr
    result = run_cli("qwen3ops.onnx_export", "--checkpoint", str(tmp_path), "--precision", "int3")
    assert result.returncode == 2 and "invalid choice" in result.stderr
