"""GGUF conversion of a real (tiny) checkpoint with llama.cpp's own tools."""

import json
from pathlib import Path

from qwen3ops import artifacts, gguf, provision
from tests.conftest import run_cli


def test_tiny_checkpoint_converts_quantizes_and_is_cached(store: Path) -> None:
    checkpoint = provision.provision("qwen3-tiny", "synthetic", store, progress=False)["path"]
    args = ("qwen3ops.gguf", "--checkpoint", checkpoint, "--quant", "q8_0", "--quant", "q4_k_m",
            "--store", str(store), "--json")
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    result = json.loads(first.stdout.strip().splitlines()[-1])
    assert result["synthetic"] is True and result["name"] == "qwen3-tiny-synthetic"
    for quant in ("q8_0", "q4_k_m"):
        path = Path(result["files"][quant])
        assert path.is_file() and path.stat().st_size > 0
        assert gguf.read_general_name(path) == "qwen3-tiny-synthetic"  # servers show "synthetic"
        manifest = artifacts.read_manifest(Path(result["paths"][quant]))
        assert manifest["kind"] == "gguf" and manifest["quant"] == quant and manifest["synthetic"] is True
        assert artifacts.verify(Path(result["paths"][quant])) == []
    again = run_cli(*args)
    assert again.returncode == 0
    assert json.loads(again.stdout.strip().splitlines()[-1])["changed"] is False


def test_bad_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    out = run_cli("qwen3ops.gguf", "--checkpoint", str(tmp_path), "--quant", "q8_0", "--store", str(tmp_path))
    assert out.returncode == 2 and "Traceback" not in out.stderr and "error" in out.stderr.lower()
