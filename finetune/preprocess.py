"""Records -> model inputs: roles, cleaning, PII masking, length budget, de-duplication, splits, report.

    python -m finetune.preprocess --config finetune/configs/tiny-cocc.yml [--set k=v] [--out DIR]
    python -m finetune.preprocess show FILE [--max-tokens 256]     # preprocess and print (unlabelled ok)

For each record (finetune.readers):
  1. roles: speaker ids are resolved to agent/customer (finetune.cleaning.infer_roles); only the
     roles in `preprocess.roles` are kept; consecutive turns of one role are merged.
  2. cleaning: spoken digits, ASR marks, fillers (finetune.cleaning); PII masked with typed
     placeholders (finetune.pii), the corpus's own masks (`******`) becoming <REDACTED>.
  3. rendering: one line per turn, `客户：...` / `客服：...` (work orders: one line per `@~` field).
  4. length: when the rendered text exceeds `preprocess.max_tokens` tokens of the model's tokenizer,
     whole turns are kept from the head (head_fraction of the budget) and from the tail, with a
     `……` line between; a single turn longer than its share is cut at a token boundary.
Then: labels are validated against the label file, exact duplicates (after normalisation) are
removed (conflicting labels: all copies dropped), held-out examples are removed from training
data, missing validation/test splits are carved out of train per class (stratified, seeded), and
a data report (class balance, lengths, truncation, PII counts, duplicates) is written beside the
splits (train.jsonl, validation.jsonl, test.jsonl, data_report.json, data_report.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finetune import cleaning, pii, readers
from finetune import config as config_mod
from finetune import taxonomy as taxonomy_mod
from finetune.readers import AGENT, CUSTOMER, Record, Turn
from qwen3ops.errors import UserError

ROLE_TAGS = {CUSTOMER: "客户", AGENT: "客服"}
GAP = "……"
SPLITS = ("train", "validation", "test")


@dataclass
class Example:
    id: str
    text: str
    label: str | None
    tokens: int
    tokens_before: int
    truncated: bool
    source: str
    kind: str
    pii: dict[str, int] = field(default_factory=dict)
    synthetic: bool = False
    # Hash of the whole normalised text before the length budget: duplicates are judged on it, so
    # that two calls that differ only in their (cut) middle are not taken for the same call.
    key: str = ""


Counter_ = Callable[[str], int]


def token_counter(tokenizer: Any) -> Counter_:
    """A function counting tokens of a text with a `tokenizers.Tokenizer`."""
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def _cut(tokenizer: Any, text: str, budget: int, from_end: bool) -> str:
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    if len(ids) <= budget:
        return text
    part = ids[-budget:] if from_end else ids[:budget]
    return tokenizer.decode(part).strip("\ufffd")


def fit(lines: list[str], budget: int, head_fraction: float, tokenizer: Any) -> tuple[list[str], bool]:
    """Head + tail lines within `budget` tokens (counted on the joined text); (lines, truncated)."""
    count = token_counter(tokenizer)
    if count("\n".join(lines)) <= budget:
        return lines, False
    target = budget
    while target > 0:
        gap_cost = count(GAP) + 2
        room = max(target - gap_cost, 1)
        head_room = int(room * head_fraction)
        costs = [count(line) + 1 for line in lines]
        head: list[str] = []
        used = 0
        for line, cost in zip(lines, costs, strict=True):
            if used + cost > head_room:
                break
            head.append(line)
            used += cost
        if not head and head_room > 0:
            head = [_cut(tokenizer, lines[0], max(head_room - 1, 1), from_end=False)]
            used = count(head[0]) + 1
        tail: list[str] = []
        tail_room = room - used
        rest = lines[len(head):] if head and head[0] == lines[0] else lines[1:]
        for line, cost in zip(reversed(rest), reversed(costs[len(costs) - len(rest):]), strict=True):
            if cost > tail_room:
                break
            tail.insert(0, line)
            tail_room -= cost
        if not tail and rest and tail_room > 1:
            tail = [_cut(tokenizer, rest[-1], tail_room - 1, from_end=True)]
        result = [*head, GAP, *tail] if len(head) + len(tail) < len(lines) else [*head, *tail]
        overshoot = count("\n".join(result)) - budget
        if overshoot <= 0:
            return result, True
        target -= max(overshoot, 1)
    return [_cut(tokenizer, "\n".join(lines), budget, from_end=False)], True


def render_record(record: Record, settings: dict[str, Any], tokenizer: Any,
                  pii_counts: Counter[str]) -> tuple[Example, float]:
    """One record -> one Example (and the confidence of role inference, 1.0 when not needed)."""
    turns = list(record.turns)
    confidence = 1.0
    if record.kind == "transcript":
        mapping, confidence = cleaning.infer_roles(turns)
        turns = [Turn(mapping.get(t.role, t.role), t.text) for t in turns]
    local: Counter[str] = Counter()
    cleaned: list[Turn] = []
    for turn in turns:
        if record.kind == "transcript" and turn.role not in settings["roles"]:
            continue
        pieces = re.split(r"@~|\n+", turn.text) if record.kind == "text" else [turn.text]
        for piece in pieces:
            text = cleaning.clean(piece, spoken_digits=settings["spoken_digits"], fillers=settings["remove_fillers"])
            if settings["mask_pii"]:
                text, _ = pii.mask(text, settings["mask_min_digits"], local)
            if not text:
                continue
            if settings["merge_turns"] and cleaned and cleaned[-1].role == turn.role and record.kind == "transcript":
                cleaned[-1] = Turn(turn.role, cleaned[-1].text + "，" + text)
            else:
                cleaned.append(Turn(turn.role, text))
    lines = [f"{ROLE_TAGS[t.role]}：{t.text}" if t.role in ROLE_TAGS else t.text for t in cleaned]
    count = token_counter(tokenizer)
    full = "\n".join(lines)
    before = count(full)
    lines, truncated = fit(lines, settings["max_tokens"], settings["head_fraction"], tokenizer)
    text = "\n".join(lines)
    pii_counts.update(local)
    example = Example(id=record.id, text=text, label=record.label, tokens=count(text), tokens_before=before,
                      truncated=truncated, source=record.where, kind=record.kind, pii=dict(local),
                      key=_norm_key(full))
    return example, confidence


def _norm_key(text: str) -> str:
    normalised = re.sub(r"[\W_]+", "", text).lower()
    return hashlib.sha1(normalised.encode("utf-8")).hexdigest()[:16]


def _key(example: Example) -> str:
    return example.key or _norm_key(example.text)


def dedup(examples: list[Example]) -> tuple[list[Example], dict[str, int]]:
    """Drop exact duplicates (first kept); texts seen with different labels are dropped entirely."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        groups[_key(ex)].append(ex)
    kept, duplicates, conflicts = [], 0, 0
    for ex in examples:
        group = groups[_key(ex)]
        if len({g.label for g in group}) > 1:
            if group[0] is ex:
                conflicts += len(group)
            continue
        if group[0] is ex:
            kept.append(ex)
        else:
            duplicates += 1
    return kept, {"duplicates_removed": duplicates, "conflicting_removed": conflicts}


def stratified_split(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(rest, held): `fraction` of each class held out (at least one when a class has 3 or more)."""
    by_label: dict[str | None, list[Example]] = defaultdict(list)
    for ex in examples:
        by_label[ex.label].append(ex)
    rng = random.Random(seed)
    rest, held = [], []
    for label in sorted(by_label, key=str):
        group = sorted(by_label[label], key=lambda e: e.id)
        rng.shuffle(group)
        n = round(len(group) * fraction)
        if fraction > 0 and n == 0 and len(group) >= 3:
            n = 1
        n = min(n, len(group) - 1) if len(group) > 1 else 0
        held.extend(group[:n])
        rest.extend(group[n:])
    return rest, held


def limit_split(examples: list[Example], n: int | None, seed: int) -> list[Example]:
    if n is None or len(examples) <= n:
        return examples
    _, kept = stratified_split(examples, n / len(examples), seed)
    return kept


def _stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {"n": len(values), "mean": round(statistics.fmean(values), 1), "p50": ordered[len(values) // 2],
            "p90": ordered[min(len(values) - 1, int(len(values) * 0.9))], "max": ordered[-1]}


@dataclass
class Dataset:
    splits: dict[str, list[Example]]
    labels: list[str]
    report: dict[str, Any]


def build(config: dict[str, Any], tokenizer: Any, taxonomy: taxonomy_mod.Taxonomy,
          progress: bool = False) -> Dataset:
    """Read, validate, preprocess, de-duplicate and split the data a config names."""
    settings, data, seed = config["preprocess"], config["data"], config["seed"]
    files = {split: config_mod.data_files(config, split) for split in SPLITS}
    raw: dict[str, list[Record]] = {split: [r for f in files[split] for r in readers.read(f)] for split in SPLITS}
    for split, records in raw.items():
        unlabelled = [r for r in records if r.label is None]
        if unlabelled:
            raise UserError(f"{unlabelled[0].where}: {split} data needs a label on every record "
                            f"({len(unlabelled)} without)")
    check = taxonomy_mod.validate_labels(
        taxonomy, [(r.label or "", r.file, r.line) for rs in raw.values() for r in rs], data["source"])
    resolve = taxonomy.resolver(data["source"])
    pii_counts: Counter[str] = Counter()
    confidences: list[float] = []
    pools: dict[str, list[Example]] = {}
    iterator_total = sum(len(v) for v in raw.values())
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=iterator_total, desc="preprocess", unit="rec", leave=False)
    for split in SPLITS:
        pools[split] = []
        for record in raw[split]:
            record.label = resolve[(record.label or "").strip()]
            example, confidence = render_record(record, settings, tokenizer, pii_counts)
            if record.kind == "transcript":
                confidences.append(confidence)
            pools[split].append(example)
            if bar:
                bar.update()
    if bar:
        bar.close()
    synth = data.get("synthetic") or {}
    if synth.get("classes") and synth.get("per_class", 0) > 0:
        _add_synthetic(pools, synth, settings, tokenizer, taxonomy, pii_counts, data, confidences)
    dedup_stats: dict[str, Any] = {}
    if settings["dedup"]:
        for split in SPLITS:
            pools[split], dedup_stats[split] = dedup(pools[split])
        # No leakage: a training example may repeat a held-out one neither as a call (the full text)
        # nor as what the model sees (the text within the token budget).
        def keys(e: Example) -> set[str]:
            return {_key(e), "input:" + _norm_key(e.text)}

        held_keys = {k for split in ("validation", "test") for e in pools[split] for k in keys(e)}
        before = len(pools["train"])
        pools["train"] = [e for e in pools["train"] if not keys(e) & held_keys]
        test_keys = {k for e in pools["test"] for k in keys(e)}
        before_val = len(pools["validation"])
        pools["validation"] = [e for e in pools["validation"] if not keys(e) & test_keys]
        dedup_stats["leaks_removed"] = {"train": before - len(pools["train"]),
                                        "validation": before_val - len(pools["validation"])}
    origin = {split: ("file" if files[split] else None) for split in SPLITS}
    # A split with neither a file nor synthetic examples is carved out of train, per class.
    if not pools["test"]:
        pools["train"], pools["test"] = stratified_split(pools["train"], data["test_fraction"], seed)
        origin["test"] = f"{data['test_fraction']:.0%} of train (stratified)"
    if not pools["validation"]:
        pools["train"], pools["validation"] = stratified_split(pools["train"], data["validation_fraction"], seed + 1)
        origin["validation"] = f"{data['validation_fraction']:.0%} of train (stratified)"
    if data.get("limit"):
        pools = {s: limit_split(pools[s], data["limit"], seed) for s in SPLITS}
    labels = [s for s in taxonomy.slugs if any(e.label == s for e in pools["train"])]
    missing_in_train = sorted({e.label for s in ("validation", "test") for e in pools[s]} - set(labels), key=str)
    if missing_in_train:
        raise UserError(f"classes {', '.join(map(str, missing_in_train))} occur in validation/test data but have "
                        "no training example: add training data for them or remove them from the held-out files")
    if len(labels) < 2:
        raise UserError(f"training data has {len(labels)} class(es); a classifier needs at least two")
    all_examples = [e for s in SPLITS for e in pools[s]]
    report = {
        "files": {s: [str(f) for f in files[s]] for s in SPLITS},
        "split_origin": origin,
        "records_read": {s: len(raw[s]) for s in SPLITS},
        "label_check": {**check.to_dict(), "taxonomy": taxonomy.id, "source": data["source"]},
        "classes": labels,
        "unused_classes": [s for s in taxonomy.slugs if s not in labels],
        "counts": {s: {c: sum(1 for e in pools[s] if e.label == c) for c in labels} for s in SPLITS},
        "sizes": {s: len(pools[s]) for s in SPLITS},
        "synthetic_examples": {s: sum(1 for e in pools[s] if e.synthetic) for s in SPLITS},
        "tokens_before": _stats([e.tokens_before for e in all_examples]),
        "tokens_after": _stats([e.tokens for e in all_examples]),
        "truncated": sum(e.truncated for e in all_examples),
        "pii": {k: pii_counts[k] for k in pii.PLACEHOLDERS if pii_counts[k]},
        "pii_leftovers": sum(1 for e in all_examples if pii.leftovers(e.text, settings["mask_min_digits"])),
        "dedup": dedup_stats,
        "roles": {"transcripts": len(confidences),
                  "mean_confidence": round(statistics.fmean(confidences), 3) if confidences else None},
        "settings": settings,
        "kinds": dict(Counter(e.kind for e in all_examples)),
    }
    return Dataset(splits=pools, labels=labels, report=report)


def _add_synthetic(pools: dict[str, list[Example]], synth: dict[str, Any], settings: dict[str, Any], tokenizer: Any,
                   taxonomy: taxonomy_mod.Taxonomy, pii_counts: Counter[str], data: dict[str, Any],
                   confidences: list[float]) -> None:
    from finetune import synthetic

    classes = taxonomy.slugs if synth["classes"] == "all" else list(synth["classes"])
    for slug in classes:
        taxonomy.get(slug)
    shares = {"train": 1.0, "validation": data["validation_fraction"], "test": data["test_fraction"]}
    for i, split in enumerate(SPLITS):
        n = max(1, round(synth["per_class"] * shares[split]))
        records = synthetic.generate(n_per_class=n, classes=classes,
                                     seed=synth.get("seed", 0) + 1000 * i, id_prefix=f"synthetic-{split}")
        for record in records:
            example, confidence = render_record(record, settings, tokenizer, pii_counts)
            example.synthetic = True
            confidences.append(confidence)
            pools[split].append(example)


def write(dataset: Dataset, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for split, examples in dataset.splits.items():
        with (out / f"{split}.jsonl").open("w", encoding="utf-8") as handle:
            for ex in examples:
                handle.write(json.dumps(asdict(ex), ensure_ascii=False) + "\n")
    (out / "data_report.json").write_text(json.dumps(dataset.report, ensure_ascii=False, indent=2) + "\n",
                                          encoding="utf-8")
    (out / "data_report.md").write_text(report_markdown(dataset.report), encoding="utf-8")


def load_split(path: Path) -> list[Example]:
    return [Example(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def report_markdown(report: dict[str, Any], heading: str = "##") -> str:
    """The data report as Markdown (also a section of the run report)."""
    lines = [f"{heading} Data", ""]
    for split in SPLITS:
        synthetic = report["synthetic_examples"][split]
        files = (", ".join(f"`{f}`" for f in report["files"][split]) or report["split_origin"][split]
                 or ("`finetune.synthetic`" if synthetic else "-"))
        lines.append(f"- **{split}**: {report['sizes'][split]} examples from {files}"
                     + (f" ({synthetic} of them generated by `finetune.synthetic`)" if synthetic else ""))
    check = report["label_check"]
    lines += ["", f"Labels validated against `{check['taxonomy']}` (source: {check['source']}); "
              f"source labels mapped: {len(check['mapped'])}."]
    if report["unused_classes"]:
        lines.append(f"Classes of the label file with no training example (not learned in this run): "
                     f"{', '.join(report['unused_classes'])}.")
    lines += ["", "| class | " + " | ".join(SPLITS) + " |", "|---|" + "---:|" * len(SPLITS)]
    for c in report["classes"]:
        lines.append(f"| {c} | " + " | ".join(str(report["counts"][s][c]) for s in SPLITS) + " |")
    lines.append("| **total** | " + " | ".join(str(report["sizes"][s]) for s in SPLITS) + " |")
    tb, ta = report["tokens_before"], report["tokens_after"]
    settings = report["settings"]
    lines += ["", f"Lengths in tokens (real Qwen tokenizer), before -> after the {settings['max_tokens']}-token "
              f"head+tail budget: median {tb.get('p50')} -> {ta.get('p50')}, p90 {tb.get('p90')} -> {ta.get('p90')}, "
              f"max {tb.get('max')} -> {ta.get('max')}; {report['truncated']} examples truncated."]
    pii_text = ", ".join(f"{k} {v}" for k, v in report["pii"].items()) or "none found"
    lines.append(f"PII masked: {pii_text}; examples with PII-like leftovers: {report['pii_leftovers']}.")
    dd = report["dedup"]
    if dd:
        removed = sum(dd[s]["duplicates_removed"] for s in SPLITS)
        conflicts = sum(dd[s]["conflicting_removed"] for s in SPLITS)
        leaks = dd["leaks_removed"]
        lines.append(f"De-duplication: {removed} duplicates and {conflicts} conflicting-label copies removed; "
                     f"{leaks['train']} training and {leaks['validation']} validation examples removed because "
                     "they repeat a held-out one.")
    if report["roles"]["transcripts"]:
        lines.append(f"Speaker roles inferred for {report['roles']['transcripts']} transcripts "
                     f"(mean confidence {report['roles']['mean_confidence']}).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from qwen3ops import tokenizer as tok_mod
    from qwen3ops.paths import cache_dir

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["show"]:
        return _show(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m finetune.preprocess", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-dir", help="override data.dir")
    parser.add_argument("--out", type=Path, help="output directory (default: <runs>/<name>/data)")
    args = parser.parse_args(argv)
    try:
        overrides = [*args.overrides, *([f"data.dir={args.data_dir}"] if args.data_dir else [])]
        config = config_mod.load(args.config, overrides)
        tokenizer = tok_mod.load(str(tok_mod.ensure_tokenizer(_store(config))[0]))
        dataset = build(config, tokenizer, taxonomy_mod.load(config["labels"]), progress=True)
        out = args.out or Path(config["output_dir"] or cache_dir() / "finetune" / "runs") / config["name"] / "data"
        write(dataset, out)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report_markdown(dataset.report))
    print(json.dumps({"out": str(out), "sizes": dataset.report["sizes"]}))
    return 0


def _store(config: dict[str, Any]) -> Path | None:
    return Path(config["model"]["store"]).expanduser() if config["model"]["store"] else None


def _show(argv: list[str]) -> int:
    from qwen3ops import tokenizer as tok_mod

    parser = argparse.ArgumentParser(prog="python -m finetune.preprocess show",
                                     description="Preprocess a data file and print each result (labels optional).")
    parser.add_argument("file", type=Path)
    parser.add_argument("--max-tokens", type=int, default=config_mod.DEFAULTS["preprocess"]["max_tokens"])
    parser.add_argument("--roles", default="customer,agent")
    args = parser.parse_args(argv)
    settings = {**config_mod.DEFAULTS["preprocess"], "max_tokens": args.max_tokens, "roles": args.roles.split(",")}
    try:
        tokenizer = tok_mod.load(str(tok_mod.ensure_tokenizer()[0]))
        counts: Counter[str] = Counter()
        for record in readers.read(args.file):
            example, confidence = render_record(record, settings, tokenizer, counts)
            print(f"=== {example.id} ({example.source}; {example.tokens_before} -> {example.tokens} tokens; "
                  f"roles confidence {confidence:.2f}; PII {example.pii or '-'})")
            print(example.text)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"PII masked in total: {dict(counts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
