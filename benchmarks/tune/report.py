"""docs/performance-report.md, generated from the recorded outputs of the tuning and comparison runs.

    python -m benchmarks.tune.report reports/tune/qwen3-0.6b reports/tune/qwen3-1.7b --out docs/performance-report.md

Each directory holds a compare.json (python -m benchmarks.tune.compare) and, normally, a tune.json
(python -m benchmarks.tune). Every figure in the report is read from those files; the text around the
figures is fixed. The report names the machine, the engine build, the commands, and says "synthetic
weights" when they were.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.tune import space
from qwen3ops.errors import UserError

PROFILES = ("before", "ollama-defaults", "after")
HOST_SIZES = ((2, 4), (4, 8), (8, 16), (16, 32), (32, 64))  # vCPUs, GiB
TARGETS = {"before": 3.0, "ollama": 1.3, "bandwidth": 0.6}
MEMORY_DIMENSIONS = ("quant", "kv_cache", "ctx_per_slot", "load_mode", "instances", "prompt_cache")
MIB = 2**20


def _f(value: Any, spec: str = "{:.2f}", scale: float = 1.0) -> str:
    if value is None:
        return "–"
    try:
        return spec.format(value * scale)
    except (TypeError, ValueError):
        return str(value)


def _mib(value: Any) -> str:
    return _f(value, "{:.0f}", 1 / MIB)


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def load(directory: Path) -> dict[str, Any]:
    compare = directory / "compare.json"
    if not compare.is_file():
        raise UserError(f"{directory} has no compare.json: run `python -m benchmarks.tune.compare` first")
    run = {"dir": directory, "compare": json.loads(compare.read_text(encoding="utf-8"))}
    tune = directory / "tune.json"
    run["tune"] = json.loads(tune.read_text(encoding="utf-8")) if tune.is_file() else None
    return run


def best_level(levels: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The level with the highest goodput (ties: the higher request rate)."""
    ok = {k: v for k, v in levels.items() if not v.get("error")}
    if not ok:
        key = next(iter(levels))
        return key, levels[key]
    key = max(ok, key=lambda k: (ok[k]["goodput"], ok[k]["request_throughput"]))
    return key, ok[key]


def ratio(a: float | None, b: float | None) -> str:
    if not a:
        return "–"
    if not b:
        return "∞ (the other met the SLO on no request)"
    return f"{a / b:.2f}x"


def section_summary(runs: list[dict[str, Any]]) -> list[str]:
    out = ["## Summary", "",
           "Goodput is the rate of requests that met the SLO, at the load level (closed-loop concurrency) "
           "where each profile did best. The three profiles were measured in one run, on one host.", ""]
    rows = []
    checks = []
    for run in runs:
        c = run["compare"]
        model = c["meta"]["profile"]
        goodput = {}
        for name in PROFILES:
            entry = c["profiles"].get(name)
            if not entry:
                continue
            level, r = best_level(entry["levels"])
            goodput[name] = r["goodput"]
            rows.append([model, name, f"`{entry['label']}`", _f(r["goodput"], "{:.3f}"), f"c{level}",
                         _f(r["request_throughput"], "{:.3f}"), _f(r["ttft_p95"]), _f(r["tpot_p95"], "{:.0f}", 1000),
                         _mib(r["rss_peak_bytes"])])
        roof = c.get("roofline", {}).get("after", {})
        checks.append([model, ratio(goodput.get("after"), goodput.get("before")),
                       ratio(goodput.get("after"), goodput.get("ollama-defaults")),
                       _f(roof.get("decode_fraction_of_read_bandwidth"), "{:.0%}")])
    out += table(["model", "profile", "settings", "goodput req/s", "at", "req/s", "TTFT p95 s", "TPOT p95 ms",
                  "peak RSS MiB"], rows)
    out += ["Tuned against the others, and the tuned single-request generation speed as a share of the memory "
            "read bandwidth the hardware probe measured (bytes of weights read per token × tokens/s ÷ bandwidth):",
            ""]
    out += table(["model", "after ÷ before (goodput)", "after ÷ ollama-defaults (goodput)",
                  "single-request decode, share of read bandwidth"], checks)
    out += [f"Targets of the tuning issue: after ≥ {TARGETS['before']}x before, ≥ {TARGETS['ollama']}x "
            f"ollama-defaults, single-request decode ≥ {TARGETS['bandwidth']:.0%} of the read bandwidth, on "
            "Qwen3-0.6B with the call-centre workload:", ""]
    for run in runs:
        c = run["compare"]
        goodput = {name: best_level(c["profiles"][name]["levels"])[1]["goodput"]
                   for name in PROFILES if name in c["profiles"]}
        share = c.get("roofline", {}).get("after", {}).get("decode_fraction_of_read_bandwidth")
        after = goodput.get("after", 0.0)
        verdicts = [
            ("after ÷ before", after > 0 and after >= TARGETS["before"] * goodput.get("before", 0.0)),
            ("after ÷ ollama-defaults", after > 0 and after >= TARGETS["ollama"] * goodput.get("ollama-defaults", 0.0)),
            ("decode share of bandwidth", share is not None and share >= TARGETS["bandwidth"]),
        ]
        out.append(f"- {c['meta']['profile']} ({c['meta']['workload']['name']}): "
                   + ", ".join(f"{name} {'met' if ok else 'NOT met'}" for name, ok in verdicts))
    out.append("")
    return out


def section_levels(runs: list[dict[str, Any]]) -> list[str]:
    out = ["## Requests per second and response time", "",
           "Every level of every profile: closed loop, each client sends its next request when the previous "
           "one ends; requests of the workload, different prompts in every chunk; the SLO decides goodput.", ""]
    for run in runs:
        c = run["compare"]
        out += [f"### {c['meta']['profile']}", ""]
        rows = []
        for name in PROFILES:
            entry = c["profiles"].get(name)
            for level, r in (entry or {}).get("levels", {}).items():
                rows.append([name, level, f"{r['completed']}/{r['requests']}", _f(r["request_throughput"], "{:.3f}"),
                             _f(r["goodput"], "{:.3f}"), _f(r["output_throughput"], "{:.1f}"), _f(r["latency_p50"]),
                             _f(r["latency_p95"]), _f(r["ttft_p50"]), _f(r["ttft_p95"]),
                             _f(r["tpot_p50"], "{:.0f}", 1000), _f(r["tpot_p95"], "{:.0f}", 1000),
                             "yes" if r.get("slo_met") else "no"])
        out += table(["profile", "concurrency", "ok", "req/s", "goodput", "out tok/s", "latency p50 s", "p95 s",
                      "TTFT p50 s", "p95 s", "TPOT p50 ms", "p95 ms", "SLO p95 met"], rows)
    return out


def section_models(runs: list[dict[str, Any]]) -> list[str]:
    out = ["## Qwen3-0.6B against Qwen3-1.7B", "", "Each model with its own tuned configuration:", ""]
    rows = []
    for run in runs:
        c = run["compare"]
        after = c["profiles"].get("after")
        if not after:
            continue
        level, r = best_level(after["levels"])
        roof = c.get("roofline", {}).get("after", {})
        rows.append([c["meta"]["profile"], f"{c['meta']['parameters'] / 1e9:.2f} B", f"`{after['label']}`",
                     _mib(roof.get("weight_bytes")), _f(roof.get("decode_tokens_per_s"), "{:.1f}"),
                     _f(roof.get("prompt_tokens_per_s"), "{:.0f}"), _f(r["goodput"], "{:.3f}"), f"c{level}",
                     _f(r["latency_p50"]), _mib(r["rss_peak_bytes"])])
    out += table(["model", "parameters", "tuned settings", "weights MiB", "1-request decode tok/s",
                  "1-request prompt tok/s", "goodput req/s", "at", "latency p50 s", "peak RSS MiB"], rows)
    return out


def section_resources(runs: list[dict[str, Any]]) -> list[str]:
    out = ["## Resource use", "",
           "Per profile at its best level: the servers' mean CPU (100 % = one core), resident memory when idle "
           "(model loaded) and at peak under load, and the proportional set size (pages shared between instances "
           "counted once).", ""]
    rows = []
    for run in runs:
        c = run["compare"]
        for name in PROFILES:
            entry = c["profiles"].get(name)
            if not entry:
                continue
            level, r = best_level(entry["levels"])
            rows.append([c["meta"]["profile"], name, f"c{level}", _f(r["cpu_percent_mean"], "{:.0f}"),
                         _mib(r["rss_idle_bytes"]), _mib(r["rss_peak_bytes"]), _mib(r["pss_bytes"]),
                         _f(r["start_s"], "{:.1f}")])
    out += table(["model", "profile", "level", "server CPU %", "idle RSS MiB", "peak RSS MiB", "PSS MiB",
                  "start s"], rows)
    return out


def section_roofline(runs: list[dict[str, Any]]) -> list[str]:
    out = ["## Share of the physical limit", "",
           "One request at a time. Generating a token reads every weight once: the ceiling is the probed read "
           "bandwidth ÷ bytes of weights. A prompt token costs about 2 floating-point operations per parameter it "
           "goes through (all but the embedding table and the output head, which runs for the last position only): "
           "its ceiling is the probed matmul rate (the faster of fp32 and bf16) ÷ that.", ""]
    rows = []
    for run in runs:
        c = run["compare"]
        hw = c["meta"].get("hardware") or {}
        for name in PROFILES:
            roof = c.get("roofline", {}).get(name)
            if not roof:
                continue
            rows.append([c["meta"]["profile"], name, _mib(roof["weight_bytes"]),
                         _f(roof["decode_tokens_per_s"], "{:.1f}"), _f(roof["decode_bytes_per_s"], "{:.1f}", 1e-9),
                         _f(hw.get("read_bandwidth_bytes_per_s"), "{:.1f}", 1e-9),
                         _f(roof["decode_fraction_of_read_bandwidth"], "{:.0%}"),
                         _f(roof["prompt_tokens_per_s"], "{:.0f}"), _f(roof["prompt_ceiling_tokens_per_s"], "{:.0f}"),
                         _f(roof["prompt_fraction_of_matmul"], "{:.0%}")])
    out += table(["model", "profile", "weights MiB", "decode tok/s", "GB/s read", "probed GB/s", "share",
                  "prompt tok/s", "prompt ceiling tok/s", "share"], rows)
    for run in runs:
        hw = run["compare"]["meta"].get("hardware") or {}
        if hw:
            out += [f"Probe ({run['compare']['meta']['profile']} run): {hw.get('method')}; read "
                    f"{_f(hw.get('read_bandwidth_bytes_per_s'), '{:.1f}', 1e-9)} GB/s, matmul fp32 "
                    f"{_f(hw.get('matmul_fp32_flops'), '{:.0f}', 1e-9)} / bf16 "
                    f"{_f(hw.get('matmul_bf16_flops'), '{:.0f}', 1e-9)} GFLOP/s on {hw.get('threads')} threads.", ""]
    return out


def section_batching(runs: list[dict[str, Any]]) -> list[str]:
    out = ["## Batching: throughput and latency against parallel slots", "",
           "The tuned configuration with 1, 2, 4, 8 slots per instance, every slot busy (closed loop at "
           "slots × instances).", ""]
    for run in runs:
        c = run["compare"]
        rows = []
        for slots, r in c.get("batching", {}).items():
            rows.append([slots, str(r["concurrency"]), _f(r["request_throughput"], "{:.3f}"),
                         _f(r["goodput"], "{:.3f}"), _f(r["output_throughput"], "{:.1f}"),
                         _f(r["input_throughput"], "{:.0f}"), _f(r["latency_p50"]), _f(r["latency_p95"]),
                         _f(r["ttft_p95"]), _f(r["tpot_p50"], "{:.0f}", 1000), _mib(r["rss_peak_bytes"])])
        if rows:
            out += [f"### {c['meta']['profile']}", ""]
            out += table(["slots", "concurrency", "req/s", "goodput", "out tok/s", "in tok/s", "latency p50 s",
                          "p95 s", "TTFT p95 s", "TPOT p50 ms", "peak RSS MiB"], rows)
    return out


def _tried(run: dict[str, Any], dimension: str) -> list[dict[str, Any]]:
    """The most-measured evaluation of each value tried along a dimension of the search."""
    if not run["tune"]:
        return []
    best: dict[str, dict[str, Any]] = {}
    for search in run["tune"]["searches"].values():
        for step in search["steps"]:
            if step["dimension"] != dimension:
                continue
            for t in step["tried"]:
                if t["label"] not in best or t["chunks"] > best[t["label"]]["chunks"]:
                    best[t["label"]] = t
    return list(best.values())


def section_quantization(runs: list[dict[str, Any]]) -> list[str]:
    out = ["## Quantization: speed next to its cost", "",
           "Speed from the search's quantization step (the other settings equal); fidelity against the "
           "full-precision checkpoint on fixed prompts: top-1 agreement of the next token and KL divergence of "
           "the next-token distributions (nats). GGUF: weights dequantized into the PyTorch model (the weights' "
           "error; llama.cpp's 8-bit activation rounding is not included). ONNX: the export's own check. "
           "Synthetic weights give near-uniform distributions, on which top-1 is fragile: read the KL.", ""]
    for run in runs:
        c = run["compare"]
        fidelity = {**(run["tune"] or {}).get("fidelity", {}), **c.get("fidelity", {})}
        tried = {t["settings"]["quant"]: t for t in _tried(run, "quant")}
        rows = []
        for key, fid in sorted(fidelity.items()):
            if not isinstance(fid, dict) or "top1_agreement" not in fid:
                continue
            quant = key.split("/", 1)[1]
            t = tried.get(quant, {}).get("result", {})
            rows.append([key, _mib(c.get("sizes", {}).get(key) or t.get("weight_bytes")),
                         _f(t.get("goodput"), "{:.3f}"), _f(t.get("request_throughput"), "{:.3f}"),
                         _f(t.get("tpot_p50"), "{:.0f}", 1000), _f(fid["top1_agreement"], "{:.3f}"),
                         _f(fid["mean_kl"], "{:.2e}"), _f(fid["max_kl"], "{:.2e}"), str(fid.get("positions"))])
        if rows:
            out += [f"### {c['meta']['profile']}", ""]
            out += table(["artifact", "weights MiB", "goodput req/s", "req/s", "TPOT p50 ms", "top-1 agreement",
                          "mean KL", "max KL", "positions"], rows)
    return out


STRATEGY_TEXT = {
    "quant": "Quantization: fewer bytes per weight means less memory and fewer bytes read per generated token.",
    "kv_cache": "KV cache type: q8_0 halves the cache of every slot against f16 (needs flash attention).",
    "ctx_per_slot": "Context bound: the KV cache is sized for slots × context; bounding the context per slot "
                    "to what the workload needs shrinks it.",
    "load_mode": "mmap maps the file (pages shared between instances, reclaimable); none reads the weights "
                 "into private memory; mmap+mlock pins them.",
    "instances": "Instances per host: each has its own KV cache and compute buffers; mapped weights are shared.",
    "prompt_cache": "Prompt cache: per slot only, plus a host-memory cache of earlier prompts, or off.",
}


def section_memory(runs: list[dict[str, Any]]) -> list[str]:
    out = ["## Memory strategies, measured", "",
           "Each strategy as the search measured it: one setting changed, the others as they stood at that step. "
           "Memory is the proportional set size of the instances together (peak RSS where PSS is not known).", ""]
    for run in runs:
        rows = []
        for dimension in MEMORY_DIMENSIONS:
            for t in _tried(run, dimension):
                r = t["result"]
                value = {"quant": "quant", "kv_cache": "cache_type_k", "ctx_per_slot": "ctx_per_slot",
                         "load_mode": "load_mode", "instances": "instances", "prompt_cache": "prompt_cache"}[dimension]
                rows.append([dimension, str(t["settings"][value]), _mib(r.get("rss_idle_bytes")),
                             _mib(r.get("rss_peak_bytes")), _mib(r.get("pss_bytes")), _f(r.get("goodput"), "{:.3f}"),
                             str(t["chunks"])])
        if rows:
            out += [f"### {run['compare']['meta']['profile']}", ""]
            out += table(["strategy", "value", "idle RSS MiB", "peak RSS MiB", "PSS MiB", "goodput req/s", "chunks"],
                         rows)
    out += [f"- {text}" for text in STRATEGY_TEXT.values()]
    out.append("")
    return out


def section_search(runs: list[dict[str, Any]]) -> list[str]:
    out = ["## The search", "",
           "Coordinate descent over the dimensions in priority order, successive halving within each "
           "(benchmarks/tune/search.py); each row is one dimension and what it settled.", ""]
    for run in runs:
        tune = run["tune"]
        if not tune:
            continue
        meta = tune["meta"]
        out += [f"### {meta['profile']}", "",
                f"{meta['measured_chunks']} chunks measured, {meta['reused_chunks']} re-used from the cache; "
                f"SLO {json.dumps({k: v for k, v in meta['slo'].items() if v is not None})} (p95, seconds); memory "
                f"limit {_mib(meta.get('memory_limit_bytes'))} MiB. Command: `{meta['command']}`", ""]
        for backend, search in tune["searches"].items():
            rows = [[s["dimension"], str(len(s["tried"])), s["winner"] if s["winner"] != s["incumbent"] else "(kept)",
                     s["reason"]] for s in search["steps"]]
            out += table(["dimension", "evaluations", "winner", "why"], rows)
            if search["skipped"]:
                out += [f"Not reached ({backend}, time budget): {', '.join(search['skipped'])}.", ""]
        where = f"written to `{tune['vars_file']}`" if tune.get("vars_file") else \
            "not written to an inventory in this run (the tuner ran without --inventory/--vars-file)"
        out += [f"Chosen: `{tune['best']['label']}`; inventory variables {where}.", ""]
    return out


def section_hosts(runs: list[dict[str, Any]]) -> list[str]:
    out = ["## Deployment recommendations per host size", "",
           "Estimates from the measurements above: instances of the tuned configuration per host, limited by "
           "cores (each instance uses its measured thread count) and by memory (each needs its MemoryMax, 80 % "
           "of the host's memory at most), and the goodput they add up to if it scales with instances (it does "
           "while memory bandwidth per core holds; measure on the target to be sure).", ""]
    rows = []
    for run in runs:
        tune = run["tune"]
        after = run["compare"]["profiles"].get("after")
        if not tune or not after:
            continue
        settings = space.Settings.from_dict(after["settings"])
        variables = tune["variables"]
        memory_max = variables.get("llamacpp_server_systemd_memory_max") or \
            variables.get("onnxruntime_server_systemd_memory_max") or "0M"
        per_instance_mib = int(str(memory_max).rstrip("M") or 0)
        cores = settings.threads_batch or settings.threads or 1
        per_instance = tune["best"]["result"]["goodput"] / settings.instances  # measured with every slot busy
        for vcpus, gib in HOST_SIZES:
            by_cpu = vcpus // cores
            by_memory = int(gib * 1024 * 0.8 // per_instance_mib) if per_instance_mib else by_cpu
            n = min(by_cpu, by_memory)
            rows.append([run["compare"]["meta"]["profile"], f"{vcpus} vCPU, {gib} GiB", str(n),
                         f"{settings.quant}, {settings.parallel} slots, {cores} thread(s), MemoryMax {memory_max}",
                         _f(n * per_instance, "{:.2f}"), "memory" if by_memory < by_cpu else "cores"])
    out += table(["model", "host", "instances", "each", "estimated goodput req/s", "bound by"], rows)
    return out


def section_ollama(runs: list[dict[str, Any]]) -> list[str]:
    sources = runs[0]["compare"]["meta"].get("ollama_sources") or [s.__dict__ for s in space.OLLAMA_DEFAULT_SOURCES]
    out = ["## The Ollama-defaults profile and where each default comes from", "",
           "Ollama's defaults applied to the same llama.cpp build (Ollama's own engine is not part of this "
           "comparison: the settings are):", ""]
    out += table(["setting", "default", "source"], [[s["setting"], s["value"], s["source"]] for s in sources])
    return out


def _other_cpu(runs: list[dict[str, Any]]) -> str:
    """The largest mean CPU use outside the servers over every measurement recorded (not in older records)."""
    found: list[float] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            value = node.get("other_cpu_percent_max")
            if isinstance(value, (int, float)):
                found.append(float(value))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for run in runs:
        walk(run["compare"])
    if not found:
        return "not recorded."
    return f"at most {max(found):.0f}% during any measurement (mean over one chunk of requests)."


def render(runs: list[dict[str, Any]], command: str) -> str:
    first = runs[0]["compare"]["meta"]
    host = first["host"]
    synthetic = any(r["compare"]["meta"].get("synthetic") for r in runs)
    engine = first.get("engine", {})
    lines = [f"# Performance report: Qwen3 on {first['hostname']}", ""]
    if synthetic:
        lines += ["> **Synthetic weights.** The models have the exact Qwen3 architecture with random weights: "
                  "speed and memory figures are real; what the models say is not.", ""]
    lines += [
        f"- **Machine**: {first['hostname']} — {host['cpu_model']}, {host['logical_cpus']} logical CPUs "
        f"({host['physical_cores']} physical cores), {host['memory_gib']} GiB; {first.get('platform', '')}",
        f"- **Engine**: {engine.get('engine')} build `{engine.get('build')}` "
        f"(sha256 {str(engine.get('sha256'))[:16]}…)",
        f"- **Workload**: {first['workload']['name']} — {first['workload']['description']}",
        f"- **SLO** (goodput; p95 for \"SLO met\"): {json.dumps({k: v for k, v in first['slo'].items() if v})} seconds",
        "- **Other CPU use while measuring** (host CPU minus the servers': the load generator and anything "
        "else; 100% = one core): " + _other_cpu(runs),
        "- **Runs**: " + "; ".join(f"{r['compare']['meta']['profile']} finished {r['compare']['meta']['finished']}"
                                   for r in runs),
        f"- **Generated** {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} by `{command}` from "
        + ", ".join(f"`{r['dir']}/compare.json`" + (f", `{r['dir']}/tune.json`" if r["tune"] else "") for r in runs)
        + ". Every figure comes from those files; re-run the command instead of editing.",
        "",
    ]
    for section in (section_summary, section_levels, section_models, section_resources, section_roofline,
                    section_batching, section_quantization, section_memory, section_search, section_hosts,
                    section_ollama):
        lines += section(runs)
    lines += ["## How it was measured", ""]
    for run in runs:
        meta = run["compare"]["meta"]
        if run["tune"]:
            lines.append(f"- `{run['tune']['meta']['command']}`")
        lines.append(f"- `{meta['command']}`")
    lines += ["", "See docs/tuning.md for what the tools do and docs/benchmarking.md for the metrics.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tune.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="directories holding compare.json (and tune.json)")
    parser.add_argument("--out", type=Path, default=Path("docs/performance-report.md"))
    args = parser.parse_args(argv)
    try:
        runs = [load(d) for d in args.runs]
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python -m benchmarks.tune.report " + " ".join(str(d) for d in args.runs) + f" --out {args.out}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(runs, command), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
