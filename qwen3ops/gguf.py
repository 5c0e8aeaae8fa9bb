"""Convert a Hugging Face checkpoint to GGUF (f16), then quantize it (Q8_0, Q4_K_M) with llama.cpp.

Each output is an artifact in the store, published atomically with a manifest:

    <store>/gguf/<profile>/<checkpoint dir name>/<quant>/<profile>[-synthetic]-<QUANT>.gguf

f16 comes from llama.cpp's own converter (`convert_hf_to_gguf.py`, vendored in the pinned source);
Q8_0 and Q4_K_M come from `llama-quantize` applied to the f16 artifact, which is therefore always
made. A run whose inputs (checkpoint manifest, llama.cpp version, f16 artifact) are unchanged reuses
the published artifacts and reports changed=false. Synthetic (random-weight) checkpoints carry that
fact into the GGUF metadata (general.name ends in "-synthetic"), so servers' model lists show it.

    python -m qwen3ops.gguf --checkpoint DIR --quant q4_k_m --json
    python -m qwen3ops.gguf --checkpoint DIR --quant f16 --quant q8_0 --quant q4_k_m --store DIR

With --json the last line of stdout is one JSON object: changed, and per quant the artifact
directory (paths), the GGUF file (files) and whether it was made in this run (changed_quants).
Progress and tool output go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwen3ops import artifacts
from qwen3ops.errors import UserError
from qwen3ops.llamacpp_source import pinned_version, source_dir
from qwen3ops.paths import PROJECT_ROOT, default_store

# quant name (CLI, directory) -> llama.cpp file type name (llama-quantize argument, file name)
QUANTS: dict[str, str] = {"f16": "F16", "q8_0": "Q8_0", "q4_k_m": "Q4_K_M"}
BUILD_SCRIPT = PROJECT_ROOT / "scripts" / "build-llamacpp.sh"
CONVERTER = "convert_hf_to_gguf.py"


class ToolError(RuntimeError):
    """A llama.cpp tool failed on valid input (the message carries the end of its output)."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    profile: str
    synthetic: bool
    manifest_sha256: str

    @property
    def model_name(self) -> str:
        """general.name in the GGUF metadata: the profile, marked when the weights are random."""
        return f"{self.profile}-synthetic" if self.synthetic else self.profile


def read_checkpoint(path: Path) -> Checkpoint:
    path = path.expanduser().resolve()
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a Hugging Face checkpoint directory (no config.json); "
                        "make one with `python -m qwen3ops.provision model --json`")
    manifest = artifacts.read_manifest(path)
    if manifest is None or "profile" not in manifest:
        raise UserError(f"{path} has no artifact manifest with a profile ({artifacts.MANIFEST}); "
                        "convert checkpoints published by `python -m qwen3ops.provision model`")
    problems = artifacts.verify(path, deep=False)
    if problems:
        raise UserError(f"checkpoint {path} is damaged: {'; '.join(problems)}; provision it again")
    return Checkpoint(path=path, profile=str(manifest["profile"]), synthetic=bool(manifest.get("synthetic")),
                      manifest_sha256=artifacts.sha256_file(path / artifacts.MANIFEST))


def artifact_dir(store: Path, checkpoint: Checkpoint, quant: str) -> Path:
    return store / "gguf" / checkpoint.profile / checkpoint.path.name / quant


def gguf_file_name(checkpoint: Checkpoint, quant: str) -> str:
    return f"{checkpoint.model_name}-{QUANTS[quant]}.gguf"


def llamacpp_bin_dir(explicit: Path | None) -> Path:
    """The directory holding llama-quantize: given, else built (once, cached) by scripts/build-llamacpp.sh."""
    if explicit is not None:
        bin_dir = explicit.expanduser().resolve()
    else:
        print("llama.cpp tools: scripts/build-llamacpp.sh (builds once, ~7 min, then cached)",
              file=sys.stderr)
        result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
        if result.returncode != 0:
            raise ToolError(f"{BUILD_SCRIPT} failed (exit {result.returncode}); see its output above")
        bin_dir = Path(result.stdout.strip().splitlines()[-1])
    if not os.access(bin_dir / "llama-quantize", os.X_OK):
        raise UserError(f"{bin_dir}/llama-quantize is missing or not executable; "
                        "point --llamacpp-bin at the bin directory printed by scripts/build-llamacpp.sh")
    return bin_dir


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    """Run a tool with its output on our stderr (stdout is kept for the JSON result)."""
    print(f"{what}: {' '.join(argv)}", file=sys.stderr, flush=True)
    result = subprocess.run(argv, stdout=sys.stderr, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        raise ToolError(f"{what} failed (exit {result.returncode}); its output is above")


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on directory/.lock: concurrent runs for one checkpoint take turns."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another conversion of this checkpoint ({directory}/.lock)", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_current(dest: Path, expected: dict[str, Any]) -> bool:
    """Whether the artifact at dest was made from exactly these inputs and is intact (sizes)."""
    manifest = artifacts.read_manifest(dest)
    if manifest is None or any(manifest.get(key) != value for key, value in expected.items()):
        return False
    return not artifacts.verify(dest, deep=False)


def read_general_name(gguf_path: Path) -> str:
    """general.name from a GGUF file's metadata (read with the gguf package)."""
    from gguf import GGUFReader  # the pinned gguf package; heavy import, only when needed

    field = GGUFReader(gguf_path).get_field("general.name")
    return "" if field is None else str(field.contents())


def _check_name(gguf_path: Path, checkpoint: Checkpoint) -> None:
    name = read_general_name(gguf_path)
    if name != checkpoint.model_name:
        raise ToolError(f"{gguf_path}: general.name is {name!r}, expected {checkpoint.model_name!r}")


def _description(checkpoint: Checkpoint, expected: dict[str, Any], made_by: str) -> dict[str, Any]:
    """The manifest of a GGUF artifact: its inputs (expected) and what it is."""
    quant = expected["quant"]
    return {"kind": "gguf", **expected, "file_type": QUANTS[quant], "profile": checkpoint.profile,
            "synthetic": checkpoint.synthetic, "name": checkpoint.model_name,
            "gguf_file": gguf_file_name(checkpoint, quant), "made_by": made_by}


def convert_f16(checkpoint: Checkpoint, dest: Path, expected: dict[str, Any]) -> None:
    """checkpoint -> f16 GGUF with the vendored converter, published at dest."""
    converter = source_dir() / CONVERTER
    description = _description(checkpoint, expected, f"llama.cpp {CONVERTER} --outtype f16")
    with tempfile.TemporaryDirectory(prefix="qwen3ops-gguf-") as work:
        # Metadata that the converter would otherwise guess from the directory name and model card.
        override = Path(work) / "metadata.json"
        override.write_text(json.dumps({
            "general.name": checkpoint.model_name,
            "general.description": (f"{checkpoint.profile}, random (synthetic) weights: for testing and "
                                    "throughput measurement only" if checkpoint.synthetic
                                    else f"{checkpoint.profile}"),
            "general.tags": ["qwen3-ops"] + (["synthetic-weights"] if checkpoint.synthetic else []),
        }), encoding="utf-8")
        # The converter never needs the network here: the checkpoint has every file it reads.
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env.pop("NO_LOCAL_GGUF", None)  # use the gguf-py vendored beside the converter
        with artifacts.publish(dest, description) as tmp:
            out = tmp / description["gguf_file"]
            _run([sys.executable, str(converter), str(checkpoint.path), "--outtype", "f16",
                  "--outfile", str(out), "--metadata", str(override)], "convert to f16", env=env)
            _check_name(out, checkpoint)


def quantize(checkpoint: Checkpoint, f16_dir: Path, dest: Path, expected: dict[str, Any],
             bin_dir: Path) -> None:
    """f16 GGUF -> expected["quant"] with llama-quantize, published at dest."""
    quant = expected["quant"]
    f16_manifest = artifacts.read_manifest(f16_dir) or {}
    description = {**_description(checkpoint, expected, f"llama-quantize {QUANTS[quant]}"),
                   "llamacpp_build": bin_dir.parent.name}
    with artifacts.publish(dest, description) as tmp:
        out = tmp / description["gguf_file"]
        _run([str(bin_dir / "llama-quantize"), str(f16_dir / f16_manifest["gguf_file"]), str(out),
              QUANTS[quant], str(os.cpu_count() or 1)], f"quantize to {QUANTS[quant]}")
        _check_name(out, checkpoint)


def _make(checkpoint: Checkpoint, store: Path, quants: list[str], common: dict[str, Any],
          llamacpp_bin: Path | None, force: bool) -> list[str]:
    """Make the artifacts that are missing or stale (f16 first: the others come from it); which were made."""
    artifacts.clean_partials(artifact_dir(store, checkpoint, "f16").parent)
    made: list[str] = []

    f16_dir = artifact_dir(store, checkpoint, "f16")
    f16_expected = {**common, "quant": "f16"}
    if force or not _is_current(f16_dir, f16_expected):
        convert_f16(checkpoint, f16_dir, f16_expected)
        made.append("f16")
    f16_sha = artifacts.sha256_file(f16_dir / artifacts.MANIFEST)

    bin_dir: Path | None = None
    for quant in [q for q in quants if q != "f16"]:
        dest = artifact_dir(store, checkpoint, quant)
        expected = {**common, "quant": quant, "source": {"path": str(f16_dir), "manifest_sha256": f16_sha}}
        if force or not _is_current(dest, expected):
            bin_dir = bin_dir or llamacpp_bin_dir(llamacpp_bin)
            quantize(checkpoint, f16_dir, dest, expected, bin_dir)
            made.append(quant)

    return made


def ensure_gguf(checkpoint_path: Path, quants: list[str], store: Path | None = None,
                llamacpp_bin: Path | None = None, force: bool = False) -> dict[str, Any]:
    """Make (or reuse) the GGUF artifacts of a checkpoint; the result is what --json prints."""
    unknown = sorted(set(quants) - set(QUANTS))
    if unknown or not quants:
        raise UserError(f"unknown quantization {unknown or quants}; choose from {', '.join(QUANTS)}")
    checkpoint = read_checkpoint(checkpoint_path)
    store = (store or default_store()).expanduser().resolve()
    version = pinned_version()
    common = {"checkpoint": {"path": str(checkpoint.path), "manifest_sha256": checkpoint.manifest_sha256},
              "llama_cpp_python": version}
    ordered = sorted(set(quants), key=list(QUANTS).index)
    with _locked(artifact_dir(store, checkpoint, "f16").parent):
        made = _make(checkpoint, store, ordered, common, llamacpp_bin, force)

    wanted = [q for q in QUANTS if q in quants]
    manifests = {q: artifacts.read_manifest(artifact_dir(store, checkpoint, q)) or {} for q in wanted}
    return {
        "changed": bool(made),
        "changed_quants": made,
        "profile": checkpoint.profile,
        "synthetic": checkpoint.synthetic,
        "name": checkpoint.model_name,
        "checkpoint": str(checkpoint.path),
        "llama_cpp_python": version,
        "paths": {q: str(artifact_dir(store, checkpoint, q)) for q in wanted},
        "files": {q: str(artifact_dir(store, checkpoint, q) / manifests[q]["gguf_file"]) for q in wanted},
        "sizes": {q: manifests[q]["files"][manifests[q]["gguf_file"]]["size"] for q in wanted},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qwen3ops.gguf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="checkpoint directory published by `python -m qwen3ops.provision model`")
    parser.add_argument("--quant", action="append", choices=list(QUANTS), required=True,
                        help="output quantization; repeat for several (f16 is always made: it is the source)")
    parser.add_argument("--store", type=Path, default=None,
                        help=f"artifact store (default: {default_store()})")
    parser.add_argument("--llamacpp-bin", type=Path, default=None,
                        help="directory with llama-quantize (default: built or reused by "
                             "scripts/build-llamacpp.sh)")
    parser.add_argument("--force", action="store_true",
                        help="remake the artifacts even when they are current")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line (last line)")
    args = parser.parse_args(argv)
    try:
        result = ensure_gguf(args.checkpoint, args.quant, args.store, args.llamacpp_bin, args.force)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        for quant, path in result["files"].items():
            state = "made" if quant in result["changed_quants"] else "up to date"
            print(f"{quant:7} {state:10} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
