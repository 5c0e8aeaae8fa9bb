"""The whole fine-tuning run in one command: preprocess -> train -> evaluate -> export -> report.

    python -m finetune.pipeline --config finetune/configs/tiny-cocc.yml
    python -m finetune.pipeline --config finetune/configs/qwen3-0.6b-cocc.yml --max-steps 3   # size a real run
    python -m finetune.pipeline --config CONFIG --set train.lr=1e-3 --set train.epochs=2 --data-dir /data/cocc
    python -m finetune.pipeline --config CONFIG --resume       # continue an interrupted run (Ctrl-C, SIGTERM)
    python -m finetune.pipeline --config CONFIG --reuse        # report a finished run of the same inputs

Writes everything into the run directory `<output_dir>/<name>` (default output_dir:
~/.cache/qwen3-ops/finetune/runs, outside the clone, since it holds preprocessed data): data/,
metrics.jsonl, tensorboard/, checkpoints/, best/, evaluation.json, curves.png, confusion_*.png,
report.md and report.html. The report is written at the end of every run, also of a failed one
(with what exists). The exported classifier goes to the artifact store (finetune.export).

`--max-steps N` makes a sizing run: N optimizer steps, evaluation on at most 64 examples, no
export; the report and the output give seconds per step and peak memory (RSS), from which a
full run's time is (steps per epoch x epochs x seconds per step).

Output: a summary (test macro-F1 beside the TF-IDF baseline's, runtime, seconds/step, peak RSS),
then, with --json, one JSON line (the last) for automation: {"run_dir", "report", "report_html",
"test": {...}, "baseline": {...}, "seconds", "seconds_per_step", "peak_rss_bytes", "synthetic",
"export", "changed": true}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from finetune import config as config_mod
from finetune import system
from qwen3ops.errors import UserError
from qwen3ops.paths import cache_dir

SIZING_EVAL_LIMIT = 64


def run_dir(config: dict[str, Any]) -> Path:
    base = Path(config["output_dir"]).expanduser() if config["output_dir"] else cache_dir() / "finetune" / "runs"
    return base / config["name"]


def inputs_fingerprint(config: dict[str, Any]) -> str:
    """A hash of what a run's result depends on: the resolved config and the bytes of its data files."""
    from qwen3ops.artifacts import sha256_file

    digest = hashlib.sha256(config_mod.fingerprint(config).encode())
    for split in ("train", "validation", "test"):
        for path in config_mod.data_files(config, split):
            digest.update(f"{split}:{path.name}:{sha256_file(path) if path.is_file() else 'missing'}".encode())
    labels = Path(config["labels"])
    if labels.is_file():
        digest.update(sha256_file(labels).encode())
    return digest.hexdigest()[:16]


def reusable(out: Path, fingerprint: str) -> dict[str, Any] | None:
    """The result of a finished run in `out` with the same inputs, if there is one."""
    try:
        result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if result.get("fingerprint") != fingerprint or not result.get("test") or not Path(result["report"]).is_file():
        return None
    return {**result, "changed": False}


def run(config: dict[str, Any], resume: bool = False, progress: bool = True, sizing: int | None = None,
        out: Path | None = None, reuse: bool = False) -> dict[str, Any]:
    """Run every stage; returns the summary object (also written to RUN/result.json)."""
    from finetune import evaluate, export, preprocess, report, taxonomy, train
    from qwen3ops import tokenizer as tok_mod

    out = out or run_dir(config)
    fingerprint = inputs_fingerprint(config)
    if reuse and not resume and (previous := reusable(out, fingerprint)):
        return previous
    if out.exists() and not resume:
        for name in ("data", "checkpoints", "best", "tensorboard"):
            shutil.rmtree(out / name, ignore_errors=True)
        for path in out.glob("*"):
            if path.is_file():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    info: dict[str, Any] = {"config": config, "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                            "hardware": None, "stages": {}, "sizing_run": sizing, "resumed": resume,
                            "synthetic": config["model"]["source"] == "synthetic"}
    result: dict[str, Any] = {"run_dir": str(out), "changed": True, "fingerprint": fingerprint}

    def stage(name: str) -> Any:
        class _Timer:
            def __enter__(self) -> None:
                self.t0 = time.time()
                if progress:
                    print(f"== {name}", file=sys.stderr)

            def __exit__(self, *exc: object) -> None:
                info["stages"][name] = round(time.time() - self.t0, 2)
                _write_info()

        return _Timer()

    def _write_info() -> None:
        info["seconds"] = round(time.time() - started, 2)
        (out / "run.json").write_text(json.dumps(info, indent=2, ensure_ascii=False, default=str) + "\n",
                                      encoding="utf-8")

    try:
        if config["train"]["threads"]:
            import torch

            torch.set_num_threads(int(config["train"]["threads"]))
        info["hardware"] = system.describe()
        labels = taxonomy.load(config["labels"])
        with stage("preprocess"):
            if not (resume and (out / "data" / "data_report.json").is_file()):
                store = Path(config["model"]["store"]).expanduser() if config["model"]["store"] else None
                tokenizer = tok_mod.load(str(tok_mod.ensure_tokenizer(store)[0]))
                dataset = preprocess.build(config, tokenizer, labels, progress=progress)
                preprocess.write(dataset, out / "data")
        with stage("train"):
            trained = train.train(config, out / "data", out, resume=resume, progress=progress)
        info["synthetic"] = trained["model"]["synthetic"]
        with stage("evaluate"):
            evaluation = evaluate.evaluate_run(config, out, progress=progress)
        if config["export"]["enabled"] and not sizing:
            with stage("export"):
                result["export"] = export.export_run(config, out)["path"]
        result.update({
            "test": {"n": evaluation["n"], "macro_f1": evaluation["model"]["macro_f1"],
                     "accuracy": evaluation["model"]["accuracy"], "source": _test_source(out)},
            "baseline": ({"macro_f1": evaluation["baseline"]["macro_f1"],
                          "accuracy": evaluation["baseline"]["accuracy"]} if "baseline" in evaluation else None),
            "steps": trained["steps"],
            "seconds_per_step": trained["seconds_per_step"],
            "peak_rss_bytes": system.peak_rss_bytes(),
            "synthetic": trained["model"]["synthetic"],
            "profile": trained["model"]["profile"],
            "method": trained["method"],
            "trainable_parameters": trained["model"]["trainable_parameters"],
            "seconds_per_example": evaluation["seconds_per_example"],
        })
    finally:
        # The report is written at the end of every run, also of a failed one (with what exists).
        _write_info()
        t0 = time.time()
        paths = report.write(out)
        info["stages"]["report"] = round(time.time() - t0, 2)
        _write_info()
        result.update({"report": paths["markdown"], "report_html": paths["html"], "seconds": info["seconds"],
                       "sizing_run": sizing})
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _test_source(out: Path) -> str:
    report = json.loads((out / "data" / "data_report.json").read_text(encoding="utf-8"))
    files = [Path(f).name for f in report["files"]["test"]]
    return ", ".join(files) or report["split_origin"]["test"] or "synthetic test split"


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    weights = "SYNTHETIC weights" if result.get("synthetic") else "real weights"
    if result.get("test"):
        t, b = result["test"], result.get("baseline")
        split = f"held-out {t.get('source', 'test')} (n={t['n']})"
        line = (f"{split}: macro-F1 {t['macro_f1']:.3f} (accuracy {t['accuracy']:.3f}) | "
                f"TF-IDF+LR baseline macro-F1 {b['macro_f1']:.3f} (accuracy {b['accuracy']:.3f})" if b
                else f"{split}: macro-F1 {t['macro_f1']:.3f} (accuracy {t['accuracy']:.3f})")
        lines.append(f"{result.get('profile')} [{weights}, {result.get('method')}]: {line}")
    if result.get("seconds_per_step") is not None:
        lines.append(f"runtime {result['seconds']:.0f} s; {result['steps']} steps at {result['seconds_per_step']:.2f} "
                     f"s/step (median); peak RSS {system.human_bytes(result['peak_rss_bytes'])}; "
                     f"inference {result['seconds_per_example']:.3f} s/example")
    lines.append(f"report: {result.get('report')} (and {result.get('report_html')})")
    if result.get("export"):
        lines.append(f"classifier: {result['export']}")
    return lines


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM behaves like Ctrl-C: the training saves a checkpoint, the report is still written."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="a YAML config (finetune/configs/*.yml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=1e-3 (repeatable)")
    parser.add_argument("--data-dir", help="directory of the data files (overrides data.dir)")
    parser.add_argument("--max-steps", type=int, help="sizing run: stop after N optimizer steps, no export")
    parser.add_argument("--out", type=Path, help="run directory (default: <output_dir>/<name>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in the run directory")
    parser.add_argument("--reuse", action="store_true",
                        help="if the run directory holds a finished run of the same config and data, report it "
                             "instead of training again (\"changed\": false)")
    parser.add_argument("--no-export", action="store_true", help="skip publishing the classifier")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="end with one JSON line (for automation)")
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    if args.data_dir:
        overrides.append(f"data.dir={args.data_dir}")
    if args.max_steps:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.no_export:
        overrides.append("export.enabled=false")
    try:
        config = config_mod.load(args.config, overrides)
        if args.max_steps and not config["evaluate"]["limit"]:
            config["evaluate"]["limit"] = SIZING_EVAL_LIMIT
        signal.signal(signal.SIGTERM, _interrupt)
        result = run(config, resume=args.resume, progress=not args.quiet, sizing=args.max_steps, out=args.out,
                     reuse=args.reuse)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (the report of what was done is in the run directory)", file=sys.stderr)
        return 130
    for line in summary_lines(result):
        print(line)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
