"""The before/after benchmark and the batching sweep, for one model, in one run on one host.

    python -m benchmarks.tune.compare --profile qwen3-0.6b --tuned reports/tune/qwen3-0.6b/tune.json

Three profiles get the same benchmark (the workload at closed-loop concurrency --levels, the same
requests, --chunks chunks per level), one after the other in this run:

- **before**: the unquantized model (GGUF f16) with llama-server's defaults (nothing passed but the
  model and an address);
- **ollama-defaults**: Q4_K_M with Ollama's defaults for this model (1 parallel request, a 4096-token
  context, threads = physical cores, batch 512, no flash attention, f16 KV cache; each default's source
  is in benchmarks/tune/space.py and the report);
- **after**: the tuned configuration (the best of a tune.json, or a settings file).

Then the batching sweep: the tuned configuration with 1, 2, 4, 8 parallel slots, each at every slot
busy (throughput and latency against slots); the hardware probe (memory read bandwidth, matmul rate)
for the roofline; and the fidelity of every quantization served. Measurements go through the cache
in their own namespace ("compare"): the three profiles are always measured together in one run, and a
re-run with nothing changed re-uses them all. Writes <out>/compare.json, which
`python -m benchmarks.tune.report` turns into docs/performance-report.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

from benchmarks import hwprobe, metrics
from benchmarks.tune import fingerprint, space
from benchmarks.tune.cache import MeasurementCache
from benchmarks.tune.measure import Measurer, Plan, aggregate, slo_met
from benchmarks.tune.models import Models
from benchmarks.workload import Workload
from qwen3ops import gguf, profiles
from qwen3ops.errors import UserError
from qwen3ops.paths import PROJECT_ROOT, cache_dir


def measure_profile(measurer: Measurer, settings: space.Settings, levels: list[int], chunks: int,
                    slo: metrics.Slo) -> dict[str, Any]:
    """Every level of one profile: {level: aggregate}.

    One server start per level: levels measured on one running server would share its prompt caches
    (the chunks of a level are disjoint slices of the workload, but chunk 0 of every level starts at
    the same request), and a cached prompt would make the later level's TTFT look free."""
    got: dict[tuple[int, int], dict[str, Any]] = {}
    for c in levels:
        got.update(measurer.collect(settings, [(c, i) for i in range(chunks)]))
    artifact = measurer.models.artifact(settings.backend, settings.quant)
    out: dict[str, Any] = {}
    for c in levels:
        result = aggregate([got[(c, i)] for i in range(chunks)], slo)
        result.update({"concurrency": c, "slo_met": slo_met(result, slo), "label": settings.label(),
                       "reused_chunks": sum(1 for i in range(chunks) if got[(c, i)].get("reused")),
                       "weight_bytes": artifact.weight_bytes})
        out[str(c)] = result
    return out


def prompt_parameters(profile: profiles.Profile) -> int:
    """Parameters a prompt token goes through: all but the embedding table (a lookup) and the output head
    (llama.cpp computes logits for the last prompt position only)."""
    c = profile.config
    table = c["vocab_size"] * c["hidden_size"]
    return profile.parameters - table * (1 if c["tie_word_embeddings"] else 2)


def roofline(level1: dict[str, Any], weight_bytes: int, parameters: int, hw: dict[str, Any]) -> dict[str, Any]:
    """Single-request speeds against the probe's ceilings: decode reads every weight once per token,
    a prompt token costs ~2 x `parameters` floating-point operations (those a prompt token goes through)."""
    tpot = level1.get("tpot_mean")
    ttft = level1.get("ttft_mean")
    prompt_tokens = level1.get("prompt_tokens_mean") or 0
    decode = 1 / tpot if tpot else None
    prefill = prompt_tokens / ttft if ttft and prompt_tokens else None
    bandwidth = hw.get("read_bandwidth_bytes_per_s") or 0
    flops = max(hw.get("matmul_fp32_flops") or 0, hw.get("matmul_bf16_flops") or 0)
    return {
        "decode_tokens_per_s": decode,
        "decode_bytes_per_s": decode * weight_bytes if decode else None,
        "decode_fraction_of_read_bandwidth": decode * weight_bytes / bandwidth if decode and bandwidth else None,
        "decode_ceiling_tokens_per_s": bandwidth / weight_bytes if bandwidth else None,
        "prompt_tokens_per_s": prefill,
        "prompt_fraction_of_matmul": prefill * 2 * parameters / flops if prefill and flops else None,
        "prompt_ceiling_tokens_per_s": flops / (2 * parameters) if flops else None,
        "weight_bytes": weight_bytes,
    }


def run(args: argparse.Namespace) -> Path:
    tuned_record: dict[str, Any] = {}
    if args.tuned.suffix == ".json":
        tuned_record = json.loads(args.tuned.read_text(encoding="utf-8"))
    tuned = space.load_settings(args.tuned)
    meta_tune = tuned_record.get("meta", {})
    profile_name = args.profile or meta_tune.get("profile")
    if not profile_name:
        raise UserError("give --profile (the tuned settings do not name one)")
    workload = Workload.load(args.workload or meta_tune.get("workload", {}).get("source") or "callcentre-zh")
    tslo = meta_tune.get("slo", {})
    slo = metrics.Slo(args.slo_ttft if args.slo_ttft is not None else tslo.get("ttft", 4.0),
                      args.slo_tpot if args.slo_tpot is not None else tslo.get("tpot", 0.25),
                      args.slo_latency if args.slo_latency is not None else tslo.get("latency"))
    bin_dir = gguf.llamacpp_bin_dir(args.llamacpp_bin)
    models = Models(profile_name, args.source, args.store, bin_dir)
    plan = Plan(requests_per_slot=args.requests_per_slot, min_requests=args.min_requests,
                max_requests=args.max_requests, max_chunk_seconds=args.max_chunk_seconds,
                max_chunks=max(args.chunks, 2), temperature=args.temperature)
    measurer = Measurer(models, workload, binary=bin_dir / "llama-server", cache=MeasurementCache(args.cache_dir),
                        plan=plan, port_base=args.port_base, log_dir=cache_dir() / "tune" / "logs",
                        namespace="compare")
    measurer.progress = not args.quiet
    measurer.max_foreign_cpu = args.max_foreign_cpu if args.max_foreign_cpu >= 0 else None
    cores = fingerprint.physical_cores()
    host_info = fingerprint.host()
    profile_settings = {"before": space.before_profile(), "ollama-defaults": space.ollama_profile(cores),
                        "after": tuned}
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"hardware probe ({host_info['logical_cpus']} threads)")
    hw = {} if args.no_probe else hwprobe.probe(host_info["logical_cpus"])
    # The same levels for every profile: those asked for, plus the load that fills the tuned configuration.
    levels = sorted(set(args.levels) | {tuned.concurrency})
    results: dict[str, Any] = {}
    for name, settings in profile_settings.items():
        say(f"{name}: {settings.label()} at concurrency {', '.join(map(str, levels))}")
        results[name] = {"settings": settings.as_dict(), "label": settings.label(),
                         "levels": measure_profile(measurer, settings, levels, args.chunks, slo)}
        for level, r in results[name]["levels"].items():
            say(f"  c{level}: {'reused' if r['reused_chunks'] == args.chunks else 'measured'}  "
                f"{r['request_throughput']:.3f} req/s, goodput {r['goodput']:.3f}, TTFT p95 {r['ttft_p95'] or 0:.2f}s, "
                f"TPOT p95 {(r['tpot_p95'] or 0) * 1000:.0f} ms, RSS {(r['rss_peak_bytes'] or 0) / 2**20:.0f} MiB"
                + (f"  ERROR {r['error'][:200]}" if r.get("error") else ""))
    batching: dict[str, Any] = {}
    for slots in args.batching:
        settings = tuned.replace(parallel=slots)
        say(f"batching: {settings.label()}")
        batching[str(slots)] = measure_profile(measurer, settings, [settings.concurrency], args.chunks,
                                               slo)[str(settings.concurrency)]
        r = batching[str(slots)]
        say(f"  {slots} slots: {'reused' if r['reused_chunks'] == args.chunks else 'measured'}  "
            f"{r['request_throughput']:.3f} req/s, {r['output_throughput']:.1f} out tok/s, "
            f"latency p50 {r['latency_p50'] or 0:.2f}s")
    parameters = profiles.get(profile_name).parameters
    per_prompt_token = prompt_parameters(profiles.get(profile_name))
    rooflines = {}
    for name, entry in results.items():
        level1 = entry["levels"].get("1")
        if level1 and hw and not level1.get("error"):
            settings = profile_settings[name]
            rooflines[name] = roofline(level1, models.artifact(settings.backend, settings.quant).weight_bytes,
                                       per_prompt_token, hw)
    quants = sorted({(s.backend, s.quant) for s in profile_settings.values()} | {("llamacpp", "q8_0")})
    fidelity: dict[str, Any] = {}
    if not args.no_fidelity:
        say("fidelity of the quantizations (computed once, then read from the store)")
        fidelity = models.fidelity(quants)
    sizes = {f"{b}/{q}": models.artifact(b, q).weight_bytes for b, q in quants}
    out = Path(args.out or PROJECT_ROOT / "reports" / "tune" / profile_name)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "meta": {
            "command": "python -m benchmarks.tune.compare " + shlex.join(sys.argv[1:]),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "hostname": platform.node(), "platform": platform.platform(), "host": host_info,
            "profile": profile_name, "parameters": parameters, "prompt_parameters": per_prompt_token,
            "synthetic": models.synthetic,
            "workload": workload.as_dict(), "slo": slo.as_dict(), "levels": levels, "chunks": args.chunks,
            "plan": plan.as_key(), "engine": measurer.engine("llamacpp"), "hardware": hw,
            "tuned_from": str(args.tuned), "measured_chunks": measurer.measured_chunks,
            "reused_chunks": measurer.reused_chunks,
            "ollama_sources": [s.__dict__ for s in space.OLLAMA_DEFAULT_SOURCES],
        },
        "profiles": results,
        "batching": batching,
        "roofline": rooflines,
        "fidelity": fidelity,
        "sizes": sizes,
    }
    path = out / "compare.json"
    path.write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
    return path


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tune.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tuned", type=Path, required=True,
                   help="the tuned configuration: a tune.json (its best) or a YAML/JSON mapping of settings")
    p.add_argument("--profile", default=None, help="model profile (default: the tune.json's)")
    p.add_argument("--source", default="synthetic", help="checkpoint source (default: %(default)s)")
    p.add_argument("--workload", default=None, help="workload (default: the tune.json's, else callcentre-zh)")
    p.add_argument("--levels", type=_ints, default=[1, 2, 4], help="closed-loop concurrency levels (default: 1,2,4)")
    p.add_argument("--batching", type=_ints, default=[1, 2, 4, 8],
                   help="parallel slots for the batching sweep (default: 1,2,4,8; empty string: none)")
    p.add_argument("--chunks", type=int, default=1, help="chunks per level (default: %(default)s)")
    p.add_argument("--requests-per-slot", type=int, default=2)
    p.add_argument("--min-requests", type=int, default=4)
    p.add_argument("--max-requests", type=int, default=24)
    p.add_argument("--max-chunk-seconds", type=float, default=120)
    p.add_argument("--slo-ttft", type=float, default=None, help="default: the tune.json's")
    p.add_argument("--slo-tpot", type=float, default=None, help="default: the tune.json's")
    p.add_argument("--slo-latency", type=float, default=None)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--port-base", type=int, default=18100)
    p.add_argument("--out", type=Path, default=None,
                   help="directory for compare.json (default: reports/tune/<profile>)")
    p.add_argument("--store", type=Path, default=None)
    p.add_argument("--llamacpp-bin", type=Path, default=None)
    p.add_argument("--max-foreign-cpu", type=float, default=10.0,
                   help="percent of one core that other processes (not the servers, not the load generator) may "
                   "use while a chunk is measured; a busier chunk is measured again and never cached (default: "
                   "%(default)s; a negative value turns the check off)")
    p.add_argument("--cache-dir", type=Path, default=None)
    p.add_argument("--no-probe", action="store_true", help="skip the hardware probe (no roofline)")
    p.add_argument("--no-fidelity", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        path = run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
