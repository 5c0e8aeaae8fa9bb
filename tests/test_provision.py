import json
from pathlib import Path

import pytest

from qwen3ops import artifacts, profiles, provision, synthetic
from qwen3ops.errors import UserError
from tests.conftest import run_cli


def test_synthetic_tiny_checkpoint_manifest_and_labels(store: Path) -> None:
    result = provision.provision("qwen3-tiny", "synthetic", store, progress=False)
    path = Path(result["path"])
    manifest = artifacts.read_manifest(path)
    assert result["synthetic"] is True and manifest["synthetic"] is True
    assert manifest["profile"] == "qwen3-tiny" and manifest["source"] == "synthetic" and manifest["seed"] == 0
    assert manifest["revision"].startswith("synthetic-seed0")
    assert set(manifest["files"]) >= {"config.json", "generation_config.json", "model.safetensors", "README.md",
                                      "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"}
    for meta in manifest["files"].values():
        assert len(meta["sha256"]) == 64 and meta["size"] > 0
    config = json.loads((path / "config.json").read_text())
    assert config["qwen3_ops"]["synthetic"] is True
    assert {k: v for k, v in config.items() if k != "qwen3_ops"} == profiles.get("qwen3-tiny").config
    assert "SYNTHETIC WEIGHTS" in (path / "README.md").read_text()


def test_second_run_changes_nothing_and_same_seed_is_bit_identical(store: Path, tmp_path: Path) -> None:
    first = provision.provision("qwen3-tiny", "synthetic", store, progress=False)
    before = (Path(first["path"]) / "manifest.json").read_text()
    again = provision.provision("qwen3-tiny", "synthetic", store, progress=False)
    assert again["changed"] is False and (Path(again["path"]) / "manifest.json").read_text() == before
    other = tmp_path / "model.safetensors"
    synthetic.write_safetensors(profiles.get("qwen3-tiny"), 0, other, progress=False)
    assert artifacts.sha256_file(other) == json.loads(before)["files"]["model.safetensors"]["sha256"]


def test_damaged_checkpoint_is_detected_and_rebuilt(store: Path) -> None:
    result = provision.provision("qwen3-tiny", "synthetic", store, seed=7, progress=False)
    weights = Path(result["path"]) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    rebuilt = provision.provision("qwen3-tiny", "synthetic", store, seed=7, progress=False)
    assert rebuilt["changed"] is True and artifacts.verify(Path(rebuilt["path"])) == []


def test_interrupted_provisioning_leaves_no_checkpoint(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(profile, seed, path, progress=True):  # a fake generator that dies half-way, as a kill would
        path.write_bytes(b"\0" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "write_safetensors", crash)
    with pytest.raises(KeyboardInterrupt):
        provision.provision("qwen3-tiny", "synthetic", store, seed=99, progress=False)
    dest = store / "models" / "qwen3-tiny" / "synthetic-seed99"
    assert not dest.exists()
    assert not [p for p in dest.parent.iterdir() if "seed99" in p.name]
    monkeypatch.undo()
    assert provision.provision("qwen3-tiny", "synthetic", store, seed=99, progress=False)["changed"] is True


def test_local_directory_source_is_copied_and_checked(store: Path) -> None:
    synthetic_dir = Path(provision.provision("qwen3-tiny", "synthetic", store, progress=False)["path"])
    local = provision.provision("qwen3-tiny", str(synthetic_dir), store, progress=False)
    assert local["synthetic"] is False and Path(local["path"]).name.startswith("local-")
    with pytest.raises(UserError, match=r"not a qwen3-0\.6b checkpoint"):
        provision.provision("qwen3-0.6b", str(synthetic_dir), store, progress=False)


def test_cli_rejects_unknown_profile_and_source_with_the_valid_choices() -> None:
    bad_profile = run_cli("qwen3ops.provision", "model", "--profile", "qwen3-72b")
    assert bad_profile.returncode == 2
    assert "valid profiles: qwen3-0.6b, qwen3-1.7b, qwen3-tiny" in bad_profile.stderr
    assert "Traceback" not in bad_profile.stderr
    bad_source = run_cli("qwen3ops.provision", "model", "--profile", "qwen3-tiny", "--source", "s3-bucket")
    assert bad_source.returncode == 2 and "valid sources: 'synthetic'" in bad_source.stderr
    missing = run_cli("qwen3ops.provision", "model", "--profile", "qwen3-tiny", "--source", "/nonexistent/dir")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_cli_json_contract(store: Path) -> None:
    out = run_cli("qwen3ops.provision", "model", "--profile", "qwen3-tiny", "--store", str(store), "--json",
                  check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(result) == {"changed", "path", "profile", "source", "synthetic", "manifest", "parameters"}
    assert result["parameters"] == profiles.get("qwen3-tiny").parameters


@pytest.mark.slow
def test_synthetic_06b_loads_in_transformers_with_596m_parameters_and_generates(store: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = provision.provision("qwen3-0.6b", "synthetic", store, progress=False)
    model = AutoModelForCausalLM.from_pretrained(result["path"], dtype=torch.bfloat16)
    assert sum(p.numel() for p in model.parameters()) == 596_049_920
    tok = AutoTokenizer.from_pretrained(result["path"])
    inputs = tok.apply_chat_template([{"role": "user", "content": "你好"}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 4
