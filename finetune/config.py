"""Run configuration: defaults, a YAML file on top, then `--set key.path=value` overrides.

Every key has a default here (this dictionary is the reference of what a config may say); a file
or an override that names an unknown key is an error that lists the valid ones. Values given with
`--set` are parsed as YAML (`--set train.lr=3e-4`, `--set train.lora.target_modules=[q_proj,v_proj]`).
Relative paths in `data` are relative to `data.dir`, and `data.dir` to the current directory (else,
when it does not exist there, to the project root, as are the shipped label files).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from qwen3ops.errors import UserError

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_LABELS = PACKAGE_DIR / "labels" / "complaints-v1.yml"

DEFAULTS: dict[str, Any] = {
    # A short name for the run: the run directory and the exported classifier are named after it.
    "name": "complaints",
    "seed": 0,
    # The versioned label file (finetune/labels/*.yml).
    "labels": str(DEFAULT_LABELS),
    "data": {
        # Base directory of the files below (relative paths); itself relative to the current directory.
        "dir": ".",
        # Training data; one file or a list. Formats: .jsonl (transcripts or text records),
        # .json (MobileCS), .tsv/.csv (text,label).
        "train": None,
        # Optional validation data (early stopping, model selection). Without it, a stratified
        # `validation_fraction` of train is held out.
        "validation": None,
        "validation_fraction": 0.1,
        # Held-out evaluation data, never used for training or model selection. Without it, a
        # stratified `test_fraction` of train is held out.
        "test": None,
        "test_fraction": 0.1,
        # The corpus the labels come from (a key of `sources` in the label file), or "auto".
        "source": "auto",
        # Add synthetic transcripts (finetune.synthetic) for these classes ("all": every class) to
        # every split, e.g. the two classes COCC lacks. per_class is the number of training examples
        # per class; validation and test get proportionally fewer.
        "synthetic": {"classes": [], "per_class": 0, "seed": 0},
        # Keep at most this many examples per split (stratified), for quick runs; null keeps all.
        "limit": None,
    },
    "preprocess": {
        # Token budget of one example (counted with the model's tokenizer), role tags included.
        "max_tokens": 256,
        # Share of the budget given to the first turns; the rest goes to the last turns.
        "head_fraction": 0.6,
        # Which speakers to keep: customer, agent, or both (transcripts only).
        "roles": ["customer", "agent"],
        "merge_turns": True,
        "remove_fillers": True,
        "spoken_digits": True,
        "mask_pii": True,
        # Digit runs this long (or longer) that are no phone/ID/card are masked as <NUMBER>.
        "mask_min_digits": 6,
        "dedup": True,
    },
    "model": {
        # A profile of qwen3ops/profiles.yml and a source for qwen3ops.provision
        # (synthetic, hub:<org>/<name>, or a local checkpoint directory).
        "profile": "qwen3-tiny",
        "source": "synthetic",
        "seed": 0,
        # An artifact store (default: the project's, ~/.cache/qwen3-ops/artifacts).
        "store": None,
    },
    "train": {
        # lora: peft LoRA adapters (+ the classification head, + optionally the embeddings);
        # full: every weight (only sensible for small models).
        "method": "lora",
        "lora": {
            "r": 16,
            "alpha": 32,
            "dropout": 0.05,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            # Train the token embeddings fully as well (large for real models: 155M for 0.6B).
            "train_embeddings": False,
        },
        "epochs": 3,
        "batch_size": 8,
        "grad_accum": 1,
        "lr": 2.0e-4,
        # Learning rate of the classification head (and trained embeddings); null: same as lr.
        "head_lr": None,
        "weight_decay": 0.01,
        "warmup_ratio": 0.06,
        "scheduler": "linear",
        "max_grad_norm": 1.0,
        # balanced: weights inversely proportional to class frequency; none: plain cross-entropy.
        "class_weights": "balanced",
        # fp32, or bf16 (CPU autocast: faster on CPUs with AVX512-BF16/AMX, a little less exact).
        "precision": "fp32",
        # Recompute activations in the backward pass instead of keeping them: much less memory for
        # long inputs and big batches, about a third more compute.
        "gradient_checkpointing": False,
        # Torch threads (null: torch's default, the number of cores).
        "threads": None,
        # Stop after this many optimizer steps (a sizing run); null: run all epochs.
        "max_steps": None,
        # Evaluate on the validation split every N optimizer steps (null: at the end of each epoch).
        "eval_every": None,
        "early_stopping": {"patience": 2, "metric": "macro_f1", "min_delta": 0.0},
        # Keep this many checkpoints (the best one is kept besides).
        "keep_checkpoints": 2,
        # Evaluation batch size.
        "eval_batch_size": 32,
    },
    "evaluate": {
        # Evaluate at most this many examples per split (stratified); null: all.
        "limit": None,
        "baseline": True,
    },
    # Merge LoRA and publish the classifier to the artifact store (finetune.export) after evaluation;
    # dtype of the exported weights: bfloat16 (half the size) or float32.
    "export": {"enabled": True, "dtype": "bfloat16"},
    # Where runs are written (a directory per run name); null: ~/.cache/qwen3-ops/finetune/runs.
    "output_dir": None,
}


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _coerce(value: Any) -> Any:
    """YAML 1.1 reads 3e-4 as a string: make it the number everybody means."""
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [_coerce(v) for v in value]
    return value


def _merge(base: dict[str, Any], update: dict[str, Any], where: str) -> dict[str, Any]:
    for key, value in update.items():
        if key not in base:
            raise UserError(f"{where}: unknown key {key!r}; valid keys: {', '.join(base)}")
        if isinstance(base[key], dict) and key not in ("synthetic",):
            if not isinstance(value, dict):
                raise UserError(f"{where}: {key!r} must be a mapping (keys: {', '.join(base[key])})")
            base[key] = _merge(base[key], value, f"{where}: {key}")
        elif isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise UserError(f"{where}: {key!r} must be a mapping")
            base[key] = {**base[key], **value}
        else:
            base[key] = _coerce(value)
    return base


def parse_override(text: str) -> dict[str, Any]:
    """'train.lr=3e-4' -> {'train': {'lr': 0.0003}}."""
    if "=" not in text:
        raise UserError(f"override {text!r} must look like key.path=value (for example train.lr=3e-4)")
    path, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise UserError(f"override {text!r}: the value is not valid YAML ({exc})") from exc
    result: dict[str, Any] = {}
    node = result
    keys = path.strip().split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return result


def load(path: Path | str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The resolved configuration: defaults, then the file, then the overrides."""
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file {path} does not exist (the shipped ones are in {PACKAGE_DIR / 'configs'})")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise UserError(f"{path}: a config is a mapping of sections ({', '.join(DEFAULTS)})")
        _merge(config, data, str(path))
    for text in overrides:
        _merge(config, parse_override(text), f"--set {text}")
    labels = Path(config["labels"]).expanduser()
    if not labels.is_absolute() and not labels.exists() and (PACKAGE_DIR.parent / labels).exists():
        config["labels"] = str(PACKAGE_DIR.parent / labels)  # shipped label files, from any directory
    data_dir = Path(config["data"]["dir"]).expanduser()
    if not data_dir.is_absolute() and not data_dir.exists() and (PACKAGE_DIR.parent / data_dir).is_dir():
        config["data"]["dir"] = str(PACKAGE_DIR.parent / data_dir)  # the shipped configs, from any directory
    validate(config)
    return config


def validate(config: dict[str, Any]) -> None:
    """Check values that would otherwise fail late, with messages that say what is allowed."""
    train, pre = config["train"], config["preprocess"]
    checks = [
        (train["method"] in ("lora", "full"), f"train.method must be lora or full, not {train['method']!r}"),
        (train["precision"] in ("fp32", "bf16"), f"train.precision must be fp32 or bf16, not {train['precision']!r}"),
        (train["class_weights"] in ("balanced", "none"),
         f"train.class_weights must be balanced or none, not {train['class_weights']!r}"),
        (train["scheduler"] in ("linear", "cosine", "constant"),
         f"train.scheduler must be linear, cosine or constant, not {train['scheduler']!r}"),
        (isinstance(train["epochs"], int) and train["epochs"] >= 1, "train.epochs must be an integer >= 1"),
        (isinstance(train["batch_size"], int) and train["batch_size"] >= 1, "train.batch_size must be >= 1"),
        (isinstance(train["grad_accum"], int) and train["grad_accum"] >= 1, "train.grad_accum must be >= 1"),
        (isinstance(train["lr"], int | float) and train["lr"] > 0, "train.lr must be a positive number"),
        (train["max_steps"] is None or (isinstance(train["max_steps"], int) and train["max_steps"] >= 1),
         "train.max_steps must be null or an integer >= 1"),
        (isinstance(pre["max_tokens"], int) and pre["max_tokens"] >= 16, "preprocess.max_tokens must be >= 16"),
        (0.0 <= pre["head_fraction"] <= 1.0, "preprocess.head_fraction must be between 0 and 1"),
        (set(pre["roles"]) <= {"customer", "agent"} and pre["roles"],
         "preprocess.roles must be a non-empty subset of [customer, agent]"),
        (train["early_stopping"]["metric"] in ("macro_f1", "accuracy", "loss"),
         "train.early_stopping.metric must be macro_f1, accuracy or loss"),
        (config["export"]["dtype"] in ("bfloat16", "float32"), "export.dtype must be bfloat16 or float32"),
        (config["data"]["train"] is not None or (config["data"]["synthetic"].get("per_class") or 0) > 0,
         "data.train is required (a file or a list of files), unless data.synthetic generates the data"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def fingerprint(config: dict[str, Any]) -> str:
    """A short stable hash of a resolved configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def data_files(config: dict[str, Any], split: str) -> list[Path]:
    """The files of one split (train, validation, test), resolved against data.dir."""
    value = config["data"][split]
    if value is None:
        return []
    base = Path(config["data"]["dir"]).expanduser()
    items = value if isinstance(value, list) else [value]
    return [p if p.is_absolute() else base / p for p in (Path(str(v)).expanduser() for v in items)]
