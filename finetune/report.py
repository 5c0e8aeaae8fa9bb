"""The run report: Markdown + a self-contained HTML page, written at the end of every run.

    python -m finetune.report --run RUN        # (re)write RUN/report.md and RUN/report.html

Reads what the stages left in the run directory (run.json, data/data_report.json, metrics.jsonl,
train_result.json, evaluation.json, export.json) and draws the loss and metric curves
(curves.png). Sections: summary (model vs baseline), weights (synthetic or real), data,
hyper-parameters, training curves, metrics per class, confusion matrices, hardware and duration.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import re
import sys
from pathlib import Path
from typing import Any

from finetune import metrics as metrics_mod
from finetune import preprocess, system
from qwen3ops.errors import UserError


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def plot_curves(run: Path) -> Path | None:
    """curves.png: training loss and validation loss on the left, validation accuracy and macro-F1 right."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return None
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    train = [r for r in records if r["type"] == "train"]
    evals = [r for r in records if r["type"] == "eval"]
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in train]
    losses = [r["loss"] for r in train]
    left.plot(steps, losses, color="#9ecae1", linewidth=0.8, label="train loss (per step)")
    window = max(1, len(losses) // 20)
    if window > 1:
        smooth = [sum(losses[max(0, i - window + 1): i + 1]) / len(losses[max(0, i - window + 1): i + 1])
                  for i in range(len(losses))]
        left.plot(steps, smooth, color="#3182bd", linewidth=1.6, label=f"train loss (mean of {window})")
    if evals:
        left.plot([r["step"] for r in evals], [r["loss"] for r in evals], "o-", color="#e6550d",
                  label="validation loss")
        right.plot([r["step"] for r in evals], [r["accuracy"] for r in evals], "o-", label="validation accuracy")
        right.plot([r["step"] for r in evals], [r["macro_f1"] for r in evals], "s-", label="validation macro-F1")
        right.set_ylim(0, 1)
    left.set_xlabel("optimizer step")
    left.set_ylabel("cross-entropy")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.set_xlabel("optimizer step")
    right.set_ylabel("score")
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.suptitle("training curves")
    fig.tight_layout()
    out = run / "curves.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _flatten(f"{prefix}.{k}" if prefix else k, v)]
    return [(prefix, value)]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def build_markdown(run: Path) -> str:
    info = _read(run / "run.json") or {}
    data_report = _read(run / "data" / "data_report.json")
    train = _read(run / "train_result.json")
    evaluation = _read(run / "evaluation.json")
    export = _read(run / "export.json")
    config = info.get("config", {})
    name = config.get("name", run.name)
    lines = [f"# Fine-tuning report: {name}", ""]
    model = (train or {}).get("model", {})
    if model.get("synthetic", info.get("synthetic")):
        lines += ["> **Weights: SYNTHETIC.** The base model has the exact Qwen3 architecture and the real tokenizer, "
                  "but seeded random weights (no model hub here). What this run shows is that the pipeline learns "
                  "from the data; the figures say nothing about what the real Qwen3 weights would reach.", ""]
    elif model:
        lines += [f"> Weights: real ({model.get('source')}).", ""]
    if info.get("sizing_run"):
        lines += [f"> **Sizing run**: stopped after {info['sizing_run']} optimizer steps (`--max-steps`) to measure "
                  "seconds per step and peak memory; its metrics are not a result.", ""]
    lines += ["## Summary", ""]
    lines += ["| | model | TF-IDF + LR baseline |", "|---|---:|---:|"]
    if evaluation:
        m, b = evaluation["model"], evaluation.get("baseline")
        lines.append(f"| macro-F1 (test split, n={evaluation['n']}) | **{_pct(m['macro_f1'])}** | "
                     f"{_pct(b['macro_f1']) if b else '-'} |")
        lines.append(f"| accuracy | {_pct(m['accuracy'])} | {_pct(b['accuracy']) if b else '-'} |")
        lines.append(f"| chance (1 / classes) | {_pct(1 / max(len(m['labels']), 1))} | |")
    else:
        lines.append("| (no evaluation in this run) | | |")
    lines.append("")
    if info:
        lines.append(f"- Started {info.get('started')}, total {_seconds(info.get('seconds'))} "
                     f"({', '.join(f'{k} {_seconds(v)}' for k, v in info.get('stages', {}).items())}).")
    if train:
        lines.append(f"- Model `{model.get('profile')}` ({model.get('parameters', 0):,} parameters, "
                     f"{model.get('trainable_parameters', 0):,} trained: method `{train['method']}`), "
                     f"{train['steps']} optimizer steps, {train['epochs_completed']} epoch(s) completed"
                     + (", stopped early" if train["stopped_early"] else "") + ".")
        lines.append(f"- **{_pct(train['seconds_per_step'])} s per optimizer step** (median), "
                     f"{(train.get('train_tokens_per_second') or 0):.0f} training tokens/s, "
                     f"**peak RSS {system.human_bytes(train['peak_rss_bytes'])}**.")
    if evaluation:
        lines.append(f"- Inference on the test split: {evaluation['seconds_per_example']:.3f} s per example.")
    if export:
        lines.append(f"- Exported classifier: `{export['path']}` (serve it with "
                     f"`python -m finetune.serve --model {export['path']}`).")
    lines.append("")
    if data_report:
        lines.append(preprocess.report_markdown(data_report))
    lines += ["## Hyper-parameters", "", "| key | value |", "|---|---|"]
    for key, value in _flatten("", config):
        if key.startswith(("preprocess.", "train.", "model.", "seed", "data.source", "data.synthetic", "data.limit",
                           "labels", "evaluate.")):
            lines.append(f"| `{key}` | `{json.dumps(value, ensure_ascii=False)}` |")
    lines.append("")
    lines += ["## Training", ""]
    if (run / "curves.png").is_file():
        lines += ["![training curves](curves.png)", ""]
    if train and train.get("history"):
        lines += ["| step | epoch | validation loss | accuracy | macro-F1 |", "|---:|---:|---:|---:|---:|"]
        for r in train["history"]:
            lines.append(f"| {r['step']} | {r['epoch']:g} | {r['loss']:.3f} | {r['accuracy']:.3f} "
                         f"| {r['macro_f1']:.3f} |")
        best = train.get("best_validation")
        if best:
            lines.append("")
            lines.append(f"Best validation {config.get('train', {}).get('early_stopping', {}).get('metric', '')}: "
                         f"step {best['step']} (these weights are evaluated and exported). Metrics per step are in "
                         "`metrics.jsonl` and `tensorboard/` (`tensorboard --logdir tensorboard`).")
        lines.append("")
    if evaluation:
        m, b = evaluation["model"], evaluation.get("baseline")
        lines += ["## Evaluation on the held-out split", ""]
        if evaluation.get("limited"):
            lines += [f"(Limited to {evaluation['n']} examples by `evaluate.limit`.)", ""]
        lines += ["| class | precision | recall | F1 | baseline F1 | support |", "|---|---:|---:|---:|---:|---:|"]
        for label in m["labels"]:
            pc = m["per_class"][label]
            bf = b["per_class"].get(label, {}).get("f1") if b else None
            lines.append(f"| {label} | {pc['precision']:.3f} | {pc['recall']:.3f} | {pc['f1']:.3f} | {_pct(bf)} | "
                         f"{pc['support']} |")
        lines.append(f"| **macro** | {m['macro_precision']:.3f} | {m['macro_recall']:.3f} | **{m['macro_f1']:.3f}** | "
                     f"{_pct(b['macro_f1']) if b else '-'} | {evaluation['n']} |")
        lines += ["", "### Confusion matrix (model)", "", "![confusion matrix](confusion_model.png)", "",
                  metrics_mod.confusion_table(m), ""]
        if b:
            lines += ["### Baseline", "", f"{b['description']}, trained on the same training split and text "
                      f"({_seconds(b['seconds'])}).", "", "![baseline confusion matrix](confusion_baseline.png)", ""]
    hardware = info.get("hardware")
    if hardware:
        lines += ["## Hardware and software", "",
                  f"- CPU: {hardware['cpu']} ({hardware['cores']} cores visible, {hardware['torch_threads']} torch "
                  f"threads; {', '.join(hardware['cpu_flags']) or 'no AVX-512'}), GPU: "
                  f"{'yes' if hardware['gpu'] else 'none'}, memory {system.human_bytes(hardware['memory_bytes'])}.",
                  f"- Load average at start: {hardware.get('load_average')} (the machine may be shared: compare "
                  "speeds measured side by side).",
                  f"- {hardware['os']}, Python {hardware['python']}, torch {hardware['torch']}, transformers "
                  f"{hardware['transformers']}, peft {hardware['peft']}.", ""]
    lines += ["## Files", "", f"Run directory `{run}`: `data/` (splits and data report), `metrics.jsonl`, "
              "`tensorboard/`, `checkpoints/`, `best/`, `train_result.json`, `evaluation.json`, `predictions.jsonl`, "
              "`report.md`, `report.html`.", ""]
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;font-size:.9em}
th{background:#f3f3f3}blockquote{background:#fff4e5;border-left:4px solid #f0a030;margin:1em 0;padding:.5em 1em}
img{max-width:100%}code{background:#f5f5f5;padding:0 .2em}"""


def to_html(markdown_text: str, run: Path) -> str:
    """A self-contained page (images inlined as data URIs)."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"])

    def inline(match: re.Match[str]) -> str:
        src = match.group(1)
        path = run / src
        if path.is_file():
            return f'src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"'
        return match.group(0)

    body = re.sub(r'src="([^"]+\.png)"', inline, body)
    title = html.escape(markdown_text.splitlines()[0].lstrip("# ")) if markdown_text else "report"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")


def write(run: Path) -> dict[str, str]:
    if not run.is_dir():
        raise UserError(f"run directory {run} does not exist")
    plot_curves(run)
    text = build_markdown(run)
    (run / "report.md").write_text(text, encoding="utf-8")
    (run / "report.html").write_text(to_html(text, run), encoding="utf-8")
    return {"markdown": str(run / "report.md"), "html": str(run / "report.html")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        print(json.dumps(write(args.run)))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
