"""Fine-tune Qwen3ForSequenceClassification on preprocessed splits: LoRA (peft) or full.

    python -m finetune.train --config finetune/configs/tiny-cocc.yml --data RUN/data --out RUN [--resume]

Usually run by finetune.pipeline, which preprocesses first. The model is provisioned through
qwen3ops.provision (profile + source of the config), loaded as Qwen3ForSequenceClassification with
one output per class present in the training data and `pad_token_id` set (the head reads the last
non-padding token). With `train.method: lora`, peft LoRA adapters (TaskType.SEQ_CLS) train on the
attention and MLP projections, the classification head `score` trains fully, and with
`train.lora.train_embeddings` the token embeddings too; with `full`, every weight trains.

Writes into the run directory:
  metrics.jsonl              one JSON line per logged training step and per evaluation
  tensorboard/               the same scalars for TensorBoard (tensorboard --logdir RUN/tensorboard)
  checkpoints/step-N/        trainable weights, optimizer, scheduler, RNG and loop state (resume)
  best/                      trainable weights of the best validation result (early stopping)
  train_result.json          steps, epochs, best validation figures, seconds/step, peak RSS
`--resume` continues from the latest checkpoint with the same data order, as if never stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from finetune import config as config_mod
from finetune import metrics, system
from finetune.preprocess import Example, load_split
from qwen3ops.errors import UserError

PAD_TOKEN = "<|endoftext|>"


def set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def provision_model(config: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """The checkpoint the config names (built or verified by qwen3ops.provision)."""
    from qwen3ops import provision

    model = config["model"]
    store = Path(model["store"]).expanduser() if model["store"] else None
    return provision.provision(model["profile"], model["source"], store, seed=model["seed"], progress=progress)


def load_tokenizer(model_dir: Path) -> Any:
    from qwen3ops import tokenizer

    return tokenizer.load(str(model_dir))


def build_model(model_dir: Path, labels: list[str], train_cfg: dict[str, Any], pad_id: int) -> Any:
    """Qwen3ForSequenceClassification with LoRA adapters (or all weights) set trainable."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    cfg = AutoConfig.from_pretrained(model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                     label2id={label: i for i, label in enumerate(labels)})
    cfg.pad_token_id = pad_id
    cfg.problem_type = "single_label_classification"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, config=cfg, dtype=torch.float32)
    model.config.pad_token_id = pad_id
    if train_cfg["method"] == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        lora = train_cfg["lora"]
        modules_to_save = ["score"] + (["embed_tokens"] if lora["train_embeddings"] else [])
        peft_config = LoraConfig(task_type=TaskType.SEQ_CLS, r=lora["r"], lora_alpha=lora["alpha"],
                                 lora_dropout=lora["dropout"], target_modules=list(lora["target_modules"]),
                                 modules_to_save=modules_to_save)
        model = get_peft_model(model, peft_config)
    if train_cfg.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model


def count_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def encode(examples: list[Example], tokenizer: Any, max_len: int) -> list[list[int]]:
    return [tokenizer.encode(e.text, add_special_tokens=False).ids[:max_len] or [0] for e in examples]


def batches_for_epoch(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """A seeded order for one epoch: shuffled, then grouped by similar length (less padding)."""
    rng = random.Random(seed * 1000 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 16
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def collate(ids: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[row, : len(x)] = 1
    return input_ids, mask


def class_weights(labels: list[int], n_classes: int, mode: str) -> Any:
    import torch

    if mode == "none":
        return None
    counts = [max(labels.count(c), 1) for c in range(n_classes)]
    total = sum(counts)
    return torch.tensor([total / (n_classes * c) for c in counts], dtype=torch.float32)


def lr_lambda(schedule: str, warmup: int, total: int) -> Any:
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return max(0.0, 1.0 - progress)

    return factor


def predict(model: Any, ids: list[list[int]], pad_id: int, batch_size: int, precision: str,
            progress: bool = False, desc: str = "predict") -> Any:
    """Class probabilities for encoded examples (batched by length, returned in input order)."""
    import contextlib

    import torch

    was_training = model.training
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    probs = torch.zeros((len(ids), model.config.num_labels))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(ids), desc=desc, unit="ex", leave=False)
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())
    with torch.no_grad(), autocast:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            input_ids, mask = collate([ids[i] for i in chunk], pad_id)
            logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
            probs[chunk] = torch.softmax(logits, dim=-1)
            if bar:
                bar.update(len(chunk))
    if bar:
        bar.close()
    model.train(was_training)
    return probs


def trainable_state(model: Any) -> dict[str, Any]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: Any, state: dict[str, Any]) -> None:
    params = dict(model.named_parameters())
    missing = [name for name in state if name not in params]
    if missing:
        raise UserError(f"checkpoint does not match the model ({len(missing)} unknown tensors, e.g. {missing[0]}): "
                        "was it written with another config?")
    import torch

    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


class Logger:
    """metrics.jsonl + TensorBoard."""

    def __init__(self, out: Path) -> None:
        self.path = out / "metrics.jsonl"
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tensorboard"))
        except ImportError:  # pragma: no cover - tensorboard is a pinned dependency
            pass

    def log(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            prefix = record.get("split", "train")
            for key, value in record.items():
                if isinstance(value, int | float) and key not in ("step", "epoch"):
                    self.writer.add_scalar(f"{prefix}/{key}", value, record["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def train(config: dict[str, Any], data_dir: Path, out: Path, resume: bool = False,
          progress: bool = True) -> dict[str, Any]:
    """Train, evaluating on the validation split; returns (and writes) train_result.json."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    tc = config["train"]
    if tc["threads"]:
        torch.set_num_threads(int(tc["threads"]))
    set_seed(config["seed"])
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    model_info = provision_model(config, progress=progress)
    model_dir = Path(model_info["path"])
    tokenizer = load_tokenizer(model_dir)
    pad_id = tokenizer.token_to_id(PAD_TOKEN)
    splits = {name: load_split(data_dir / f"{name}.jsonl") for name in ("train", "validation")}
    labels = json.loads((data_dir / "data_report.json").read_text(encoding="utf-8"))["classes"]
    label_index = {label: i for i, label in enumerate(labels)}
    max_len = config["preprocess"]["max_tokens"]
    train_ids = encode(splits["train"], tokenizer, max_len)
    train_y = [label_index[e.label] for e in splits["train"]]
    val_examples = splits["validation"]
    if config["evaluate"]["limit"] and len(val_examples) > config["evaluate"]["limit"]:
        from finetune.preprocess import limit_split

        val_examples = limit_split(val_examples, config["evaluate"]["limit"], config["seed"])
    val_ids = encode(val_examples, tokenizer, max_len)
    val_gold = [e.label for e in val_examples]

    model = build_model(model_dir, labels, tc, pad_id)
    if tc["method"] == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    trainable, total = count_parameters(model)
    head_names = ("score", "embed_tokens")
    head_lr = tc["head_lr"] or tc["lr"]
    groups: dict[tuple[float, float], list[Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = any(h in name for h in head_names)
        lr = head_lr if is_head else tc["lr"]
        decay = 0.0 if (p.ndim < 2 or "embed_tokens" in name) else tc["weight_decay"]
        groups.setdefault((lr, decay), []).append(p)
    optimizer = torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()],
                                  fused=True)
    steps_per_epoch = math.ceil(math.ceil(len(train_ids) / tc["batch_size"]) / tc["grad_accum"])
    total_steps = tc["max_steps"] or steps_per_epoch * tc["epochs"]
    warmup = int(total_steps * tc["warmup_ratio"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(tc["scheduler"], warmup, total_steps))
    weights = class_weights(train_y, len(labels), tc["class_weights"])
    lengths = [len(x) for x in train_ids]

    state = {"step": 0, "epoch": 0, "batch": 0, "best_metric": None, "best_step": None, "bad_evals": 0,
             "stopped_early": False, "history": []}
    if resume:
        checkpoint = _latest_checkpoint(out)
        if checkpoint is None:
            raise UserError(f"--resume: no checkpoint under {out / 'checkpoints'}; start without --resume")
        load_trainable(model, torch.load(checkpoint / "trainable.pt", weights_only=True))
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
        state = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
        torch.set_rng_state(torch.load(checkpoint / "rng.pt", weights_only=True))
        print(f"resumed from {checkpoint} (step {state['step']}, epoch {state['epoch']}, batch {state['batch']})",
              file=sys.stderr)
    else:  # a fresh run: nothing of an earlier one may leak into its curves or its best weights
        for name in ("checkpoints", "best", "tensorboard"):
            shutil.rmtree(out / name, ignore_errors=True)
        (out / "metrics.jsonl").unlink(missing_ok=True)
    logger = Logger(out)

    metric_name = tc["early_stopping"]["metric"]
    step_times: list[float] = []
    tokens_seen = 0

    batches_per_epoch = math.ceil(len(train_ids) / tc["batch_size"])

    def _epoch() -> float:
        """Epochs done so far, fractional inside an epoch."""
        return round(state["epoch"] + state["batch"] / batches_per_epoch, 3)

    def evaluate_validation() -> dict[str, Any]:
        t0 = time.time()
        probs = predict(model, val_ids, pad_id, tc["eval_batch_size"], tc["precision"])
        predicted = [labels[i] for i in probs.argmax(-1).tolist()]
        gold_index = torch.tensor([label_index.get(g, 0) for g in val_gold])
        loss = F.nll_loss(torch.log(probs.clamp_min(1e-9)), gold_index).item()
        result = metrics.compute(val_gold, predicted, labels)
        record = {"type": "eval", "split": "validation", "step": state["step"], "epoch": _epoch(),
                  "loss": loss, "accuracy": result["accuracy"], "macro_f1": result["macro_f1"],
                  "seconds": time.time() - t0}
        logger.log(record)
        state["history"].append(record)
        return record

    def save_checkpoint() -> None:
        path = out / "checkpoints" / f"step-{state['step']:06d}"
        tmp = path.with_name(path.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        torch.save(trainable_state(model), tmp / "trainable.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(torch.get_rng_state(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
        kept = sorted((out / "checkpoints").glob("step-*[0-9]"), key=lambda p: int(p.name.split("-")[1]))
        for old in kept[: -tc["keep_checkpoints"]]:
            shutil.rmtree(old, ignore_errors=True)

    def after_eval(record: dict[str, Any]) -> bool:
        """Track the best result; True when early stopping says stop."""
        value = record[metric_name]
        better = (state["best_metric"] is None
                  or (value < state["best_metric"] - tc["early_stopping"]["min_delta"] if metric_name == "loss"
                      else value > state["best_metric"] + tc["early_stopping"]["min_delta"]))
        if better:
            state["best_metric"], state["best_step"], state["bad_evals"] = value, state["step"], 0
            (out / "best").mkdir(exist_ok=True)
            torch.save(trainable_state(model), out / "best" / "trainable.pt")
            (out / "best" / "state.json").write_text(json.dumps(record), encoding="utf-8")
        else:
            state["bad_evals"] += 1
        return state["bad_evals"] > tc["early_stopping"]["patience"]

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=state["step"], desc=f"train {config['name']}", unit="step",
                   dynamic_ncols=True)
    model.train()
    autocast_ctx: Any
    import contextlib

    autocast_ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if tc["precision"] == "bf16" \
        else contextlib.nullcontext
    done = state["stopped_early"] or state["step"] >= total_steps
    try:
        while not done and state["epoch"] < (tc["epochs"] if not tc["max_steps"] else 10**9):
            batches = batches_for_epoch(lengths, tc["batch_size"], config["seed"], state["epoch"])
            window_loss, window_n = 0.0, 0
            step_start = time.time()
            while state["batch"] < len(batches):
                batch = batches[state["batch"]]
                input_ids, mask = collate([train_ids[i] for i in batch], pad_id)
                target = torch.tensor([train_y[i] for i in batch])
                with autocast_ctx():
                    logits = model(input_ids=input_ids, attention_mask=mask).logits
                loss = F.cross_entropy(logits.float(), target, weight=weights)
                (loss / tc["grad_accum"]).backward()
                window_loss += loss.item()
                window_n += 1
                tokens_seen += int(mask.sum())
                state["batch"] += 1
                if state["batch"] % tc["grad_accum"] and state["batch"] < len(batches):
                    continue
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    [p for p in model.parameters() if p.requires_grad], tc["max_grad_norm"]).item()
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                elapsed = time.time() - step_start
                step_times.append(elapsed)
                step_start = time.time()
                record = {"type": "train", "split": "train", "step": state["step"], "epoch": _epoch(),
                          "loss": window_loss / window_n, "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                          "seconds_per_step": elapsed, "rss_mb": system.rss_bytes() / 2**20}
                logger.log(record)
                window_loss, window_n = 0.0, 0
                if bar:
                    bar.update(1)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.1e}", s_step=f"{elapsed:.2f}")
                if tc["eval_every"] and state["step"] % tc["eval_every"] == 0:
                    if after_eval(evaluate_validation()):
                        state["stopped_early"] = True
                    save_checkpoint()
                    step_start = time.time()
                if state["stopped_early"] or state["step"] >= total_steps:
                    break
            epoch_finished = state["batch"] >= len(batches)
            if epoch_finished:
                state["epoch"] += 1
                state["batch"] = 0
            ran_eval_now = tc["eval_every"] and state["history"] and state["history"][-1]["step"] == state["step"]
            if not ran_eval_now and not state["stopped_early"]:
                if after_eval(evaluate_validation()):
                    state["stopped_early"] = True
                save_checkpoint()
            done = state["stopped_early"] or state["step"] >= total_steps
            if bar and state["history"]:
                last = state["history"][-1]
                bar.write(f"epoch {last['epoch']:g} step {last['step']}: validation loss {last['loss']:.3f} "
                          f"accuracy {last['accuracy']:.3f} macro-F1 {last['macro_f1']:.3f}")
    except KeyboardInterrupt:
        # Keep what was done up to the last optimizer step; --resume continues from there.
        state["batch"] -= state["batch"] % tc["grad_accum"]
        optimizer.zero_grad(set_to_none=True)
        save_checkpoint()
        if bar:
            bar.close()
        logger.close()
        raise UserError(f"interrupted at step {state['step']}; a checkpoint was saved in {out / 'checkpoints'}: "
                        "run the same command with --resume to continue") from None
    if bar:
        bar.close()
    logger.close()

    timed = step_times[1:] if len(step_times) > 1 else step_times
    best = json.loads((out / "best" / "state.json").read_text(encoding="utf-8")) if (out / "best").exists() else None
    result = {
        "model": {"profile": config["model"]["profile"], "source": config["model"]["source"],
                  "path": str(model_dir), "synthetic": model_info["synthetic"], "parameters": total,
                  "trainable_parameters": trainable, "labels": labels},
        "method": tc["method"],
        "steps": state["step"],
        "total_steps": total_steps,
        "epochs_completed": state["epoch"],
        "stopped_early": state["stopped_early"],
        "best_validation": best,
        "history": state["history"],
        "seconds_per_step": statistics.median(timed) if timed else None,
        "seconds_per_step_mean": statistics.fmean(timed) if timed else None,
        "train_tokens_per_second": tokens_seen / sum(step_times) if step_times and sum(step_times) else None,
        "peak_rss_bytes": system.peak_rss_bytes(),
        "train_seconds": time.time() - started,
        "resumed": resume,
    }
    (out / "train_result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def load_trained(config: dict[str, Any], out: Path, labels: list[str], which: str = "best") -> tuple[Any, Any, int]:
    """The trained model of a run (best weights, else the latest checkpoint), its tokenizer and pad id."""
    import torch

    model_dir = Path(provision_model(config, progress=False)["path"])
    tokenizer = load_tokenizer(model_dir)
    pad_id = tokenizer.token_to_id(PAD_TOKEN)
    model = build_model(model_dir, labels, config["train"], pad_id)
    source = out / "best" / "trainable.pt" if which == "best" and (out / "best").exists() else None
    if source is None:
        latest = _latest_checkpoint(out)
        if latest is None:
            raise UserError(f"{out} has no trained weights (best/ or checkpoints/): run the training first")
        source = latest / "trainable.pt"
    load_trainable(model, torch.load(source, weights_only=True))
    model.eval()
    return model, tokenizer, pad_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data", type=Path, required=True, help="directory written by finetune.preprocess")
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    args = parser.parse_args(argv)
    try:
        config = config_mod.load(args.config, args.overrides)
        result = train(config, args.data, args.out, resume=args.resume)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: result[k] for k in ("steps", "epochs_completed", "stopped_early", "seconds_per_step",
                                             "peak_rss_bytes", "best_validation")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
