"""Merge the LoRA adapters into the model and publish the classifier to the artifact store.

    python -m finetune.export --config finetune/configs/tiny-cocc.yml --run RUN [--store DIR]

The result is a plain Hugging Face Qwen3ForSequenceClassification directory (config.json with
id2label, model.safetensors, the tokenizer) that needs neither peft nor this project to load,
plus `classifier.json` (labels with their Chinese names, the label file's id, the preprocessing
settings the serving side must apply, the run's metrics, synthetic-or-real weights) and a copy of
the label file. It is published atomically with a manifest under
`<store>/classifiers/<name>/<base profile>-<run fingerprint>/`. The export reloads what it wrote
and checks that it predicts what the trained model predicts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from finetune import config as config_mod
from finetune import taxonomy as taxonomy_mod
from finetune.preprocess import load_split
from qwen3ops import artifacts
from qwen3ops.errors import UserError
from qwen3ops.paths import default_store
from qwen3ops.tokenizer import FILES as TOKENIZER_FILES

CLASSIFIER_FILE = "classifier.json"


def _card(meta: dict[str, Any]) -> str:
    base = meta["base_model"]
    weights = ("**SYNTHETIC base weights** (random, exact Qwen3 architecture): this classifier demonstrates the "
               "pipeline and the serving path; its predictions mean only what its metrics say."
               if base["synthetic"] else f"Base weights: {base['source']}.")
    rows = "\n".join(f"| {c['slug']} | {c['name_zh']} |" for c in meta["labels"])
    m = meta.get("metrics") or {}
    return f"""# {meta['name']}: complaint classifier (Qwen3ForSequenceClassification)

{weights}

- Base: `{base['profile']}` ({base['source']}); fine-tuned with `{meta['method']}`; label file `{meta['taxonomy']}`.
- Test split: macro-F1 {m.get('macro_f1', '-')}, accuracy {m.get('accuracy', '-')}
  (TF-IDF baseline macro-F1 {m.get('baseline_macro_f1', '-')}).
- Inputs must be preprocessed as in training (`classifier.json` → `preprocess`); `python -m finetune.serve`
  does that.

| label | 名称 |
|---|---|
{rows}
"""


def export_run(config: dict[str, Any], run: Path, store: Path | None = None) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification

    from finetune import train as train_mod

    data_report = json.loads((run / "data" / "data_report.json").read_text(encoding="utf-8"))
    labels = data_report["classes"]
    model, tokenizer, pad_id = train_mod.load_trained(config, run, labels)
    if config["train"]["method"] == "lora":
        model = model.merge_and_unload()
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[config["export"]["dtype"]]
    model = model.to(dtype)
    model.config.pad_token_id = pad_id
    train_result = json.loads((run / "train_result.json").read_text(encoding="utf-8"))
    evaluation = json.loads((run / "evaluation.json").read_text(encoding="utf-8")) \
        if (run / "evaluation.json").is_file() else None
    taxonomy = taxonomy_mod.load(config["labels"])
    model_info = train_result["model"]
    meta = {
        "name": config["name"],
        "task": "complaint-classification",
        "labels": [{"slug": s, "name_zh": taxonomy.get(s).name_zh} for s in labels],
        "taxonomy": taxonomy.id,
        "label_file": Path(config["labels"]).name,
        "preprocess": config["preprocess"],
        "method": config["train"]["method"],
        "base_model": {"profile": model_info["profile"], "source": model_info["source"],
                       "synthetic": model_info["synthetic"]},
        "metrics": ({"macro_f1": round(evaluation["model"]["macro_f1"], 4),
                     "accuracy": round(evaluation["model"]["accuracy"], 4),
                     "baseline_macro_f1": round(evaluation["baseline"]["macro_f1"], 4)
                     if "baseline" in evaluation else None, "n": evaluation["n"]} if evaluation else None),
        "config_fingerprint": config_mod.fingerprint(config),
        "dtype": config["export"]["dtype"],
    }
    store = store or (Path(config["model"]["store"]).expanduser() if config["model"]["store"] else default_store())
    dest = store / "classifiers" / config["name"] / f"{model_info['profile']}-{meta['config_fingerprint']}"
    model_dir = Path(model_info["path"])
    artifacts.clean_partials(dest.parent)
    description = {"kind": "classifier", "name": config["name"], "taxonomy": taxonomy.id,
                   "base_profile": model_info["profile"], "synthetic": model_info["synthetic"]}
    with artifacts.publish(dest, description) as tmp:
        model.save_pretrained(tmp)
        for name in TOKENIZER_FILES:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, tmp / name)
        shutil.copy2(config["labels"], tmp / meta["label_file"])
        (tmp / CLASSIFIER_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(_card(meta), encoding="utf-8")
    # Reload what was published and compare its predictions with the trained model's.
    reloaded = AutoModelForSequenceClassification.from_pretrained(dest, dtype=torch.float32)
    reloaded.eval()
    model = model.to(torch.float32)
    sample = load_split(run / "data" / "validation.jsonl")[:16]
    ids = train_mod.encode(sample, tokenizer, config["preprocess"]["max_tokens"])
    before = train_mod.predict(model, ids, pad_id, 16, "fp32")
    after = train_mod.predict(reloaded, ids, pad_id, 16, "fp32")
    agreement = float((before.argmax(-1) == after.argmax(-1)).float().mean())
    result = {"path": str(dest), "manifest": str(dest / artifacts.MANIFEST), "labels": labels,
              "dtype": meta["dtype"], "prediction_agreement": agreement,
              "max_probability_difference": float((before - after).abs().max())}
    if agreement < 0.99 and meta["dtype"] == "float32":
        raise UserError(f"the exported classifier at {dest} disagrees with the trained model on "
                        f"{1 - agreement:.0%} of a sample: the merge went wrong")
    (run / "export.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--store", type=Path, default=None, help=f"artifact store (default: {default_store()})")
    args = parser.parse_args(argv)
    try:
        result = export_run(config_mod.load(args.config, args.overrides), args.run, args.store)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
