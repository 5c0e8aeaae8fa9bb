"""Evaluate a trained run on its held-out split, next to a TF-IDF + logistic-regression baseline.

    python -m finetune.evaluate --config finetune/configs/tiny-cocc.yml --run RUN

The model (best validation weights) classifies the test split; a classical baseline (TF-IDF of
character 1-3-grams + logistic regression) is trained on the same training split, with the same
preprocessed text, and classifies the same test split. Both get accuracy, macro-F1, per-class
precision/recall/F1 and a confusion matrix (PNG and table). Writes evaluation.json,
predictions.jsonl (id, gold, predicted, confidence) and confusion_*.png into the run directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from finetune import config as config_mod
from finetune import metrics
from finetune.preprocess import Example, limit_split, load_split
from qwen3ops.errors import UserError


def baseline(train: list[Example], test: list[Example], seed: int = 0) -> dict[str, Any]:
    """TF-IDF (char 1-3-grams) + logistic regression trained on `train`; predictions for `test`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    started = time.time()
    pipeline = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=1),
        LogisticRegression(max_iter=3000, C=10.0, class_weight="balanced", random_state=seed),
    )
    pipeline.fit([e.text for e in train], [e.label for e in train])
    predicted = list(pipeline.predict([e.text for e in test]))
    return {"predicted": [str(p) for p in predicted], "seconds": time.time() - started,
            "description": "TF-IDF character 1-3-grams (sublinear tf) + logistic regression (C=10, balanced)"}


def evaluate_run(config: dict[str, Any], run: Path, progress: bool = True) -> dict[str, Any]:
    from finetune import train as train_mod

    data = run / "data"
    report = json.loads((data / "data_report.json").read_text(encoding="utf-8"))
    labels = report["classes"]
    train_examples = load_split(data / "train.jsonl")
    test = load_split(data / "test.jsonl")
    limit = config["evaluate"]["limit"]
    if limit and len(test) > limit:
        test = limit_split(test, limit, config["seed"])
    model, tokenizer, pad_id = train_mod.load_trained(config, run, labels)
    ids = train_mod.encode(test, tokenizer, config["preprocess"]["max_tokens"])
    started = time.time()
    probs = train_mod.predict(model, ids, pad_id, config["train"]["eval_batch_size"], config["train"]["precision"],
                              progress=progress, desc="evaluate")
    predict_seconds = time.time() - started
    confidence, index = probs.max(-1)
    predicted = [labels[i] for i in index.tolist()]
    gold = [e.label for e in test]
    model_metrics = metrics.compute(gold, predicted, labels)
    metrics.plot_confusion(model_metrics, run / "confusion_model.png",
                           f"{config['name']}: model on the test split (n={len(test)})")
    with (run / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for example, p, c in zip(test, predicted, confidence.tolist(), strict=True):
            handle.write(json.dumps({"id": example.id, "gold": example.label, "predicted": p,
                                     "confidence": round(c, 4)}) + "\n")
    result: dict[str, Any] = {
        "split": "test",
        "n": len(test),
        "limited": bool(limit and report["sizes"]["test"] > len(test)),
        "model": model_metrics,
        "predict_seconds": predict_seconds,
        "seconds_per_example": predict_seconds / max(len(test), 1),
    }
    if config["evaluate"]["baseline"]:
        base = baseline(train_examples, test, config["seed"])
        base_metrics = metrics.compute(gold, base["predicted"], labels)
        metrics.plot_confusion(base_metrics, run / "confusion_baseline.png",
                               f"{config['name']}: TF-IDF + LR baseline (n={len(test)})")
        result["baseline"] = {**base_metrics, "description": base["description"], "seconds": base["seconds"]}
    (run / "evaluation.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--run", type=Path, required=True, help="the run directory (holds data/ and best/)")
    args = parser.parse_args(argv)
    try:
        config = config_mod.load(args.config, args.overrides)
        result = evaluate_run(config, args.run)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    line = {"n": result["n"], "accuracy": result["model"]["accuracy"], "macro_f1": result["model"]["macro_f1"]}
    if "baseline" in result:
        line.update(baseline_accuracy=result["baseline"]["accuracy"], baseline_macro_f1=result["baseline"]["macro_f1"])
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
