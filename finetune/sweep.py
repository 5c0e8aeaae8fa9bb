"""A small hyper-parameter sweep: run the pipeline once per setting, tabulate, and update the docs.

    python -m finetune.sweep --config finetune/configs/tiny-cocc.yml \\
        --vary train.lr=1e-3,1e-2 --vary train.epochs=2,6 --vary preprocess.max_tokens=64,256 \\
        --out ~/.cache/qwen3-ops/finetune/sweeps/tiny --docs docs/finetune.md --section tiny-cocc
    python -m finetune.sweep --config finetune/configs/qwen3-0.6b-cocc.yml --max-steps 2 \\
        --vary train.precision=fp32 --vary train.gradient_checkpointing=true --section qwen3-0.6b-cost ...
    python -m finetune.sweep --from ~/.cache/qwen3-ops/finetune/sweeps/tiny --docs docs/finetune.md --section tiny-cocc

Modes: `ofat` (default) runs the base config, then changes one setting at a time (`--vary`
key=v1,v2: one run per value) so each row differs from the base in one place; `grid` runs every
combination. Extra `--set` overrides apply to every run (e.g. a different base learning rate).
Each run is a separate `python -m finetune.pipeline` process (so its peak memory is its own), one
after the other, never two at once. Results go to `<out>/sweep.jsonl` (one line per run, appended
as runs finish: an interrupted sweep keeps what it measured, `--continue` runs only what is
missing, `--from` re-renders), sweep.csv and
sweep.md. With `--docs FILE --section NAME`, the table replaces what is between
`<!-- sweep:NAME:begin -->` and `<!-- sweep:NAME:end -->` in FILE: docs never carry numbers
typed by hand.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from finetune import config as config_mod
from finetune import system
from qwen3ops.errors import UserError
from qwen3ops.paths import PROJECT_ROOT, cache_dir

COLUMNS = ("setting", "test macro-F1", "accuracy", "baseline macro-F1", "steps", "s/step", "peak RSS", "run time")


def parse_vary(items: list[str]) -> list[tuple[str, list[str]]]:
    out = []
    for item in items:
        if "=" not in item:
            raise UserError(f"--vary {item!r} must look like key.path=value1,value2")
        key, values = item.split("=", 1)
        out.append((key.strip(), [v.strip() for v in values.split(",") if v.strip()]))
    return out


def settings(vary: list[tuple[str, list[str]]], mode: str) -> list[list[str]]:
    """Override lists, one per run; the first is the base (no change)."""
    if mode == "grid":
        keys = [k for k, _ in vary]
        return [[f"{k}={v}" for k, v in zip(keys, combo, strict=True)]
                for combo in itertools.product(*(values for _, values in vary))]
    runs: list[list[str]] = [[]]
    runs.extend([f"{key}={value}"] for key, values in vary for value in values)
    return runs


def run_one(config_path: Path, overrides: list[str], out: Path, max_steps: int | None,
            data_dir: str | None) -> dict[str, Any]:
    command = [sys.executable, "-m", "finetune.pipeline", "--config", str(config_path), "--out", str(out),
               "--no-export", "--quiet", "--json"]
    for item in overrides:
        command += ["--set", item]
    if max_steps:
        command += ["--max-steps", str(max_steps)]
    if data_dir:
        command += ["--data-dir", data_dir]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    print(f"-- {' '.join(overrides) or '(base)'}", file=sys.stderr, flush=True)
    process = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if process.returncode != 0:
        tail = (process.stderr.strip().splitlines() or ["?"])[-1]
        return {"overrides": overrides, "error": tail}
    return json.loads(process.stdout.strip().splitlines()[-1])


def _fmt(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def row(result: dict[str, Any]) -> dict[str, str]:
    setting = " ".join(result["overrides"]) or "(base config)"
    if "error" in result:
        return {"setting": setting, "test macro-F1": f"failed: {result['error']}"}
    base = result.get("baseline") or {}
    return {
        "setting": setting,
        "test macro-F1": _fmt(result["test"]["macro_f1"]),
        "accuracy": _fmt(result["test"]["accuracy"]),
        "baseline macro-F1": _fmt(base.get("macro_f1")),
        "steps": str(result["steps"]),
        "s/step": _fmt(result["seconds_per_step"], 2),
        "peak RSS": system.human_bytes(result["peak_rss_bytes"]),
        "run time": f"{result['seconds']:.0f} s",
    }


def table(results: list[dict[str, Any]], header: dict[str, Any]) -> str:
    sizing = f"; sizing runs of {header['max_steps']} steps" if header["max_steps"] else ""
    command = header["command"].replace(str(Path.home()), "~")
    base_overrides = re.findall(r"--set[ =](\S+)", command)
    base = f"`{header['config']}`" + (f" with `{' '.join(base_overrides)}`" if base_overrides else "")
    lines = [f"Measured by `{command}` on {header['date']} ({header['cpu']}, {header['cores']} cores, "
             f"load average {header['load']}; synthetic base weights: {header['synthetic']}). Base: "
             f"{base}{sizing}; each other row changes what its first column says.",
             "", "| " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 1)]
    for result in results:
        r = row(result)
        lines.append("| " + " | ".join(r.get(c, "") if c != "setting" else f"`{r[c]}`" for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def update_docs(path: Path, section: str, text: str) -> None:
    begin, end = f"<!-- sweep:{section}:begin -->", f"<!-- sweep:{section}:end -->"
    content = path.read_text(encoding="utf-8")
    if begin not in content or end not in content:
        raise UserError(f"{path} has no {begin} ... {end} markers: add them where the table belongs")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text}{end}{tail}", encoding="utf-8")


def write_outputs(out: Path, results: list[dict[str, Any]], header: dict[str, Any]) -> str:
    text = table(results, header)
    (out / "sweep.md").write_text(text, encoding="utf-8")
    with (out / "sweep.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for result in results:
            writer.writerow(row(result))
    (out / "header.json").write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="base config")
    parser.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2", help="values to try (repeatable)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="applies to every run")
    parser.add_argument("--mode", choices=("ofat", "grid"), default="ofat")
    parser.add_argument("--max-steps", type=int, help="sizing runs of N steps (speed and memory only)")
    parser.add_argument("--data-dir", help="override data.dir")
    parser.add_argument("--out", type=Path, help="sweep directory (default: ~/.cache/qwen3-ops/finetune/sweeps/<name>)")
    parser.add_argument("--from", dest="from_dir", type=Path, help="re-render an existing sweep directory")
    parser.add_argument("--continue", dest="continue_", action="store_true",
                        help="keep the runs an interrupted sweep in --out finished, run the rest")
    parser.add_argument("--docs", type=Path, help="a Markdown file with sweep markers to update")
    parser.add_argument("--section", help="the marker name in --docs")
    args = parser.parse_args(argv)
    try:
        if args.docs and not args.section:
            raise UserError("--docs needs --section (the name in <!-- sweep:NAME:begin -->)")
        if args.from_dir:
            out = args.from_dir
            header = json.loads((out / "header.json").read_text(encoding="utf-8"))
            results = [json.loads(x) for x in (out / "sweep.jsonl").read_text(encoding="utf-8").splitlines() if x]
        else:
            if not args.config:
                raise UserError("give --config (a new sweep) or --from (re-render one)")
            base = config_mod.load(args.config, args.overrides)
            out = args.out or cache_dir() / "finetune" / "sweeps" / base["name"]
            out.mkdir(parents=True, exist_ok=True)
            runs = settings(parse_vary(args.vary), args.mode)
            for overrides in runs:  # fail fast on a bad key, before hours of training
                config_mod.load(args.config, [*args.overrides, *overrides])
            hardware = system.describe()
            command = "python -m finetune.sweep " + " ".join(argv if argv is not None else sys.argv[1:])
            header = {"command": command, "date": dt.date.today().isoformat(), "cpu": hardware["cpu"],
                      "cores": hardware["cores"], "load": [round(x, 1) for x in hardware["load_average"] or []],
                      "synthetic": base["model"]["source"] == "synthetic", "config": str(args.config),
                      "max_steps": args.max_steps}
            done: dict[str, dict[str, Any]] = {}
            if args.continue_ and (out / "sweep.jsonl").is_file():
                for line in (out / "sweep.jsonl").read_text(encoding="utf-8").splitlines():
                    previous = json.loads(line) if line.strip() else {}
                    if previous and "error" not in previous:
                        done[json.dumps(previous["overrides"])] = previous
            (out / "sweep.jsonl").write_text("".join(json.dumps(r) + "\n" for r in done.values()), encoding="utf-8")
            (out / "header.json").write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")
            results = []
            for i, overrides in enumerate(runs):
                if json.dumps(overrides) in done:
                    results.append(done[json.dumps(overrides)])
                    continue
                result = run_one(args.config, [*args.overrides, *overrides], out / f"run-{i:02d}", args.max_steps,
                                 args.data_dir)
                result["overrides"] = overrides
                results.append(result)
                with (out / "sweep.jsonl").open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(result) + "\n")
                print("   " + json.dumps(row(result)), file=sys.stderr, flush=True)
        text = write_outputs(out, results, header)
        if args.docs:
            update_docs(args.docs, args.section, text)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text)
    print(json.dumps({"out": str(out), "runs": len(results)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
