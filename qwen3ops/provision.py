"""Provision a Qwen3 checkpoint into the artifact store: synthetic, from a model hub, or a local directory.

    python -m qwen3ops.provision model --profile qwen3-0.6b --source synthetic [--seed 0] [--json]
    python -m qwen3ops.provision model --profile qwen3-0.6b --source hub:Qwen/Qwen3-0.6B
    python -m qwen3ops.provision model --profile qwen3-0.6b --source /models/Qwen3-0.6B
    python -m qwen3ops.provision profiles [--json]
    python -m qwen3ops.provision verify <artifact dir>

The checkpoint is a Hugging Face directory (config.json, generation_config.json, model.safetensors,
tokenizer files, README.md model card, manifest.json) published atomically under
`<store>/models/<profile>/<source-id>/`. A second run with the same inputs verifies the sha256 of
every file and changes nothing. The last line printed with --json is one JSON object:
{"changed", "path", "profile", "source", "synthetic", "manifest", "parameters"}.
Bad input exits with status 2 and a message that names the valid choices.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from qwen3ops import artifacts, profiles, synthetic
from qwen3ops.errors import UserError
from qwen3ops.paths import default_store
from qwen3ops.tokenizer import FILES as TOKENIZER_FILES
from qwen3ops.tokenizer import ensure_tokenizer

GENERATOR_VERSION = 1
SOURCE_FORMS = "'synthetic', 'hub:<org>/<name>' (or '<org>/<name>'), or a local directory path"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_FILES = ("*.safetensors", "*.safetensors.index.json")


def parse_source(source: str) -> tuple[str, str]:
    """(kind, value) for a source string: kind is synthetic, hub or local."""
    source = source.strip()
    if source == "synthetic":
        return "synthetic", ""
    if source.startswith("hub:"):
        hub_id = source[4:]
        if not _HUB_ID.match(hub_id):
            raise UserError(f"invalid model-hub id {hub_id!r}: expected '<org>/<name>'")
        return "hub", hub_id
    path = Path(source).expanduser()
    if path.is_dir():
        return "local", str(path.resolve())
    if source.startswith(("/", ".", "~")) or (os.sep in source and not _HUB_ID.match(source)):
        raise UserError(f"local model directory {source!r} does not exist; valid sources: {SOURCE_FORMS}")
    if _HUB_ID.match(source):
        return "hub", source
    raise UserError(f"unknown model source {source!r}; valid sources: {SOURCE_FORMS}")


def source_id(kind: str, value: str, seed: int) -> str:
    if kind == "synthetic":
        return f"synthetic-seed{seed}"
    if kind == "hub":
        return "hub-" + value.replace("/", "--")
    return "local-" + artifacts.hashlib.sha256(value.encode()).hexdigest()[:12]


def _model_card(profile: profiles.Profile, kind: str, value: str, seed: int, parameters: int) -> str:
    if kind == "synthetic":
        return f"""---
license: apache-2.0
tags: [qwen3, synthetic-weights]
---
# {profile.name} — SYNTHETIC WEIGHTS (seed {seed})

{synthetic.NOTE}

- Architecture and configuration: exactly those of `{profile.hub_id or profile.name}` ({profile.description}).
- Parameters: {parameters:,}; dtype bfloat16.
- Tokenizer: the real Qwen2/Qwen3 byte-level BPE with Qwen3's added tokens and chat template.
- Made by `python -m qwen3ops.provision model --profile {profile.name} --source synthetic --seed {seed}`.

Do not use this checkpoint for anything that depends on what the model says.
"""
    origin = f"the model hub repository `{value}`" if kind == "hub" else f"the local directory `{value}`"
    return f"# {profile.name} (real weights)\n\nCopied from {origin} by qwen3-ops; {parameters:,} parameters.\n"


def _check_config(profile: profiles.Profile, config: dict[str, Any], where: str) -> None:
    keys = ("model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "head_dim", "vocab_size")
    wrong = [f"{k}={config.get(k)!r} (profile: {profile.config[k]!r})" for k in keys
             if config.get(k) != profile.config[k]]
    if wrong:
        raise UserError(f"{where} is not a {profile.name} checkpoint: {', '.join(wrong)}; "
                        f"pick the matching --profile ({', '.join(profiles.names())})")


def _copy_checkpoint(src: Path, dest: Path, profile: profiles.Profile) -> None:
    config_path = src / "config.json"
    if not config_path.is_file():
        raise UserError(f"{src} has no config.json: point --source at a Hugging Face checkpoint directory")
    _check_config(profile, json.loads(config_path.read_text(encoding="utf-8")), str(src))
    weights = [p for pattern in _WEIGHT_FILES for p in src.glob(pattern)]
    if not any(p.suffix == ".safetensors" for p in weights):
        raise UserError(f"{src} has no *.safetensors weights (other formats are not supported)")
    wanted = ["config.json", "generation_config.json", *TOKENIZER_FILES, "LICENSE"]
    for path in [*(src / n for n in wanted), *weights]:
        if path.is_file():
            shutil.copy2(path, dest / path.name)


def _download(hub_id: str, dest: Path) -> str:
    try:
        from huggingface_hub import HfApi, snapshot_download

        revision = HfApi().model_info(hub_id).sha or "unknown"
        snapshot = Path(snapshot_download(hub_id, revision=revision))
    except Exception as exc:
        raise UserError(f"cannot download {hub_id!r} from the model hub ({type(exc).__name__}: {exc}); "
                        "offline, use --source synthetic or a local directory") from exc
    for path in snapshot.iterdir():
        if path.is_file():
            shutil.copy2(path.resolve(), dest / path.name)
    return revision


def provision(profile_name: str, source: str, store: Path | None = None, seed: int = 0,
              progress: bool = True) -> dict[str, Any]:
    """Make sure the checkpoint exists and is intact; returns the result object the CLI prints."""
    profile = profiles.get(profile_name)
    kind, value = parse_source(source)
    store = (store or default_store()).expanduser()
    dest = store / "models" / profile.name / source_id(kind, value, seed)
    wanted = {"kind": "checkpoint", "profile": profile.name, "source": source if kind != "local" else value,
              "source_kind": kind, "seed": seed if kind == "synthetic" else None,
              "generator_version": GENERATOR_VERSION if kind == "synthetic" else None}

    manifest = artifacts.read_manifest(dest)
    changed = True
    if manifest is not None and all(manifest.get(k) == v for k, v in wanted.items()):
        problems = artifacts.verify(dest)
        if not problems:
            changed = False
        else:
            print(f"warning: cached {dest} is damaged ({'; '.join(problems[:3])}); rebuilding", file=sys.stderr)
    if changed:
        tokenizer_path, _ = ensure_tokenizer(store)
        artifacts.clean_partials(dest.parent)
        description = dict(wanted)
        with artifacts.publish(dest, description) as tmp:
            if kind == "synthetic":
                config = {**profile.config, "qwen3_ops": {"synthetic": True, "seed": seed, "note": synthetic.NOTE}}
                artifacts.write_json(tmp / "config.json", config)
                artifacts.write_json(tmp / "generation_config.json", profile.generation_config)
                parameters = synthetic.write_safetensors(profile, seed, tmp / "model.safetensors", progress=progress)
                revision = f"synthetic-seed{seed}-v{GENERATOR_VERSION}"
            else:
                if kind == "hub":
                    revision = _download(value, tmp)
                else:
                    _copy_checkpoint(Path(value), tmp, profile)
                    revision = "local"
                parameters = profile.parameters
            for name in TOKENIZER_FILES:
                if not (tmp / name).exists():
                    shutil.copy2(tokenizer_path / name, tmp / name)
            (tmp / "README.md").write_text(_model_card(profile, kind, value, seed, parameters), encoding="utf-8")
            description.update(synthetic=kind == "synthetic", revision=revision, parameters=parameters,
                               hub_id=profile.hub_id, dtype="bfloat16")
        manifest = artifacts.read_manifest(dest)
        assert manifest is not None
    return {"changed": changed, "path": str(dest), "profile": profile.name, "source": wanted["source"],
            "synthetic": bool(manifest["synthetic"]), "manifest": str(dest / artifacts.MANIFEST),
            "parameters": manifest["parameters"]}


def _profiles_table() -> dict[str, Any]:
    table = {}
    for name in profiles.names():
        p = profiles.get(name)
        table[name] = {"description": p.description, "hub_id": p.hub_id, "parameters": p.parameters,
                       "bf16_bytes": p.bf16_bytes, "config": p.config}
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qwen3ops.provision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    model = sub.add_parser("model", help="provision a checkpoint into the store")
    model.add_argument("--profile", required=True, help=f"one of: {', '.join(profiles.names())}")
    model.add_argument("--source", default="synthetic", help=f"{SOURCE_FORMS} (default: %(default)s)")
    model.add_argument("--seed", type=int, default=0, help="seed of synthetic weights (default: %(default)s)")
    model.add_argument("--store", type=Path, default=None, help=f"artifact store (default: {default_store()})")
    model.add_argument("--json", action="store_true", help="print the result as one JSON line")
    listing = sub.add_parser("profiles", help="list the model profiles")
    listing.add_argument("--json", action="store_true")
    check = sub.add_parser("verify", help="check every file of an artifact against its manifest")
    check.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "profiles":
            table = _profiles_table()
            if args.json:
                print(json.dumps(table))
            else:
                for name, p in table.items():
                    print(f"{name:12} {p['parameters']:>14,} parameters  {p['description']}")
            return 0
        if args.command == "verify":
            problems = artifacts.verify(args.path)
            for problem in problems:
                print("BAD", problem)
            print("ok" if not problems else f"{len(problems)} problem(s)")
            return 1 if problems else 0
        result = provision(args.profile, args.source, args.store, args.seed, progress=not args.json)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        state = "built" if result["changed"] else "up to date"
        label = "SYNTHETIC weights" if result["synthetic"] else "real weights"
        print(f"{result['profile']} ({label}, {result['parameters']:,} parameters) {state}: {result['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
